//! Generates plain tonic code for helloworld from the example's own proto (the bench serves it
//! in-process; the tests use the client).
fn main() {
    // google/api/annotations.proto comes from micro-build's bundled protos.
    let fds = protox::compile(
        ["helloworld.proto"],
        [
            "../../examples/helloworld/proto",
            "../../crates/micro-build/proto",
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // The descriptor set too, for benches that serve helloworld as a Micro service.
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(
        out.join("helloworld_descriptors.bin"),
        prost::Message::encode_to_vec(&fds),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    tonic_prost_build::configure()
        .compile_fds(fds)
        .unwrap_or_else(|e| panic!("{e}"));
    println!("cargo:rerun-if-changed=../../examples/helloworld/proto/helloworld.proto");
}
