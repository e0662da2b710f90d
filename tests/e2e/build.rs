//! Generates a plain tonic client for helloworld from the example's own proto.
fn main() {
    let fds = protox::compile(["helloworld.proto"], ["../../examples/helloworld/proto"])
        .unwrap_or_else(|e| panic!("{e}"));
    tonic_prost_build::configure()
        .build_server(false)
        .compile_fds(fds)
        .unwrap_or_else(|e| panic!("{e}"));
    println!("cargo:rerun-if-changed=../../examples/helloworld/proto/helloworld.proto");
}
