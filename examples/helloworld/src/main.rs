//! The helloworld service: `Helloworld.Call` answers `Hello <name>`, `Helloworld.Stream` streams
//! numbered responses. Run it against a local `micro server` with `cargo run -p helloworld`.

mod handler;

/// Code generated from `proto/helloworld.proto`.
pub mod pb {
    #![expect(missing_docs, reason = "generated code")]
    micro::include_proto!("helloworld");
}

#[tokio::main]
async fn main() {
    let service = micro::Service::new("helloworld")
        .descriptors(micro::include_descriptors!())
        .handle(pb::helloworld_server::HelloworldServer::new(
            handler::Helloworld,
        ));
    if let Err(e) = service.run().await {
        eprintln!("helloworld: {e}");
        std::process::exit(1);
    }
}
