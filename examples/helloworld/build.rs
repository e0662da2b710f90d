//! Compiles proto/helloworld.proto with protox: no protoc needed.
fn main() {
    micro_build::compile_protos(&["proto/helloworld.proto"], &["proto"])
        .unwrap_or_else(|e| panic!("{e}"));
}
