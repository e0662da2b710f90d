//! Compiles the platform's protos with protox: no protoc needed.
fn main() {
    micro_build::compile_protos(
        &[
            "proto/micro/registry/registry.proto",
            "proto/micro/proxy/proxy.proto",
        ],
        &["proto"],
    )
    .unwrap_or_else(|e| panic!("{e}"));
}
