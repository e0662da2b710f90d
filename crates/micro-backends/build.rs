//! With the `etcd` feature: compiles the part of etcd's v3 API micro uses
//! (`proto/etcd/rpc.proto`) with protox, so building micro needs no protoc.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "etcd")]
    etcd();
}

#[cfg(feature = "etcd")]
fn etcd() {
    let proto = "proto/etcd/rpc.proto";
    println!("cargo:rerun-if-changed={proto}");
    let set = protox::compile([proto], ["proto/etcd"]).unwrap_or_else(|e| panic!("{e}"));
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .compile_fds(set)
        .unwrap_or_else(|e| panic!("generating etcd's API: {e}"));
}
