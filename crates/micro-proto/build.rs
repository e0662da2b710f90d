//! Compiles the platform's protos with protox: no protoc needed. etcd's v3 API (the part micro
//! uses: KV, Watch, Lease) is generated here too, client only and outside the platform's
//! descriptor set, for the etcd registry and for locks on etcd.
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
    etcd();
}

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
