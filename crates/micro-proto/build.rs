//! Compiles the platform's protos with protox: no protoc needed.
fn main() {
    micro_build::compile_protos(
        &[
            "proto/micro/registry/registry.proto",
            "proto/micro/proxy/proxy.proto",
            "proto/micro/store/store.proto",
            "proto/micro/config/config.proto",
            "proto/micro/broker/broker.proto",
            "proto/micro/events/events.proto",
            "proto/micro/runtime/runtime.proto",
            "proto/micro/auth/auth.proto",
        ],
        &["proto"],
    )
    .unwrap_or_else(|e| panic!("{e}"));
}
