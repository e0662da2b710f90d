//! Generates plain tonic code for helloworld from the example's own proto (the bench serves it
//! in-process; the tests use the client).
fn main() {
    let fds = protox::compile(["helloworld.proto"], ["../../examples/helloworld/proto"])
        .unwrap_or_else(|e| panic!("{e}"));
    tonic_prost_build::configure()
        .compile_fds(fds)
        .unwrap_or_else(|e| panic!("{e}"));
    println!("cargo:rerun-if-changed=../../examples/helloworld/proto/helloworld.proto");
}
