//! Compiles proto/greeter.proto with protox: no protoc needed.
fn main() {
    micro_build::compile_protos(&["proto/greeter.proto"], &["proto"])
        .unwrap_or_else(|e| panic!("{e}"));
}
