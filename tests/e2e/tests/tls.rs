//! Transport security end to end: a CA and a server certificate made here (rcgen), `micro
//! server --tls-cert --tls-key --tls-ca` serving TLS on the gRPC port, the gateway and the
//! dashboard; the CLI reaching it through `micro env add NAME ADDRESS --ca FILE`; a service
//! through `MICRO_TLS`/`MICRO_TLS_CA`; and tokens and passwords refused in plaintext to an
//! address off this machine unless `--insecure` says the network is trusted.

use std::{path::Path, sync::Arc};

use micro_e2e::{Output, Sandbox};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};

fn ok(out: &Output, what: &str) {
    assert_eq!(out.code, 0, "{what}: {out:?}");
}

/// Writes `ca.pem`, `server.pem` and `server.key` into `dir`: a CA, and a certificate it
/// signed for 127.0.0.1 and localhost.
fn certificates(dir: &Path) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "micro test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate().expect("server key");
    let mut server = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    server
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().expect("ip")));
    let cert = server.signed_by(&key, &issuer).expect("server certificate");
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).expect("write");
    std::fs::write(dir.join("server.pem"), cert.pem()).expect("write");
    std::fs::write(dir.join("server.key"), key.serialize_pem()).expect("write");
}

/// `GET /` over TLS to `address`, trusting `ca`; answers the status line and body.
fn https_get(address: &str, ca: &Path) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::{
        self,
        pki_types::{CertificateDer, ServerName, pem::PemObject},
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).expect("ca") {
            roots.add(cert.expect("a certificate")).expect("a root");
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        let name = ServerName::try_from("127.0.0.1").expect("name");
        let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
        tls.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut answer = String::new();
        let _ = tls.read_to_string(&mut answer).await;
        answer
    })
}

/// A health check of the node at `address` through `micro::Client`, which dials it over TLS
/// (the node is marked secure) verifying it with `ca`, else with the system's roots.
fn health_through_client(address: &str, ca: Option<Vec<u8>>) -> Result<(), tonic::Status> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        micro::tls::configure(Some(micro::tls::Tls { ca }));
        micro::tls::mark_secure(address);
        let client = micro::Client::builder(Arc::new(micro_core::MemoryRegistry::new()))
            .on_behalf_of_callers()
            .build();
        let mut health = tonic_health::pb::health_client::HealthClient::new(client.node(address));
        health
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .map(|_| ())
    })
}

/// A health check through `micro::Client` of a service whose one node, at `address`, is
/// registered with `transport=tls` (and never marked secure in this process).
fn health_of_a_node_registered_with_tls(address: &str, ca: Vec<u8>) -> Result<(), tonic::Status> {
    use micro_core::Registry;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        micro::tls::configure(Some(micro::tls::Tls { ca: Some(ca) }));
        let registry = Arc::new(micro_core::MemoryRegistry::new());
        let mut node = micro_core::Node::new("tls-1", address);
        node.metadata
            .insert(micro::tls::TRANSPORT_METADATA.to_owned(), "tls".to_owned());
        registry
            .register(
                "micro",
                &micro_core::Service::new("tls-node", "latest").with_node(node),
                std::time::Duration::from_secs(60),
            )
            .await
            .expect("register");
        let client = micro::Client::builder(registry)
            .on_behalf_of_callers()
            .build();
        let mut health =
            tonic_health::pb::health_client::HealthClient::new(client.service("tls-node"));
        health
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .map(|_| ())
    })
}

#[test]
fn the_platform_serves_tls_and_tokens_never_travel_in_plaintext() {
    let mut sb = Sandbox::new();
    let dir = sb.home.path().join("tls");
    std::fs::create_dir_all(&dir).expect("dir");
    certificates(&dir);
    let path = |f: &str| dir.join(f).display().to_string();
    sb.start_server_with(&[
        "--tls-cert",
        &path("server.pem"),
        "--tls-key",
        &path("server.key"),
        "--tls-ca",
        &path("ca.pem"),
    ]);
    let grpc = sb.address().to_owned();

    // The CLI, through an env that verifies the server with the CA.
    ok(
        &sb.micro(&["env", "add", "secure", &grpc, "--ca", &path("ca.pem")]),
        "env add",
    );
    let secure = |args: &[&str]| {
        let mut cmd = sb.micro_command(&[&["-e", "secure"][..], args].concat());
        cmd.env_remove("MICRO_SERVER_ADDRESS");
        micro_e2e::run(cmd)
    };
    ok(
        &secure(&["login", "--username", "admin", "--password", "micro"]),
        "login over TLS",
    );
    ok(&secure(&["store", "write", "k", "v"]), "store over TLS");
    assert_eq!(secure(&["store", "read", "k"]).stdout, "v\n");

    // Plaintext to a TLS port does not get through.
    let plain = sb.micro(&["services"]);
    assert_ne!(plain.code, 0, "{plain:?}");

    // A service reaches the platform over TLS and is called through the proxy.
    let _hello = sb.helloworld(&[("MICRO_TLS", "1"), ("MICRO_TLS_CA", &path("ca.pem"))]);
    let out = secure(&["call", "helloworld", "Helloworld.Call", r#"{"name":"TLS"}"#]);
    ok(&out, "call over TLS");
    assert!(out.stdout.contains("Hello TLS"), "{out:?}");

    // A node registered with `transport=tls` is dialled over TLS from its metadata alone (by
    // the name `localhost`, which nothing in this process has marked secure).
    let port = grpc.rsplit_once(':').expect("host:port").1;
    health_of_a_node_registered_with_tls(
        &format!("localhost:{port}"),
        std::fs::read(path("ca.pem")).expect("ca"),
    )
    .expect("a health check of a node registered with transport=tls");

    // micro::Client dials a node over TLS, verifying it: with the CA it is answered; trusting
    // only the system's roots, the handshake fails and the call never leaves.
    health_through_client(&grpc, Some(std::fs::read(path("ca.pem")).expect("ca")))
        .expect("a health check over TLS");
    let refused = health_through_client(&grpc, None).expect_err("an unknown CA is refused");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("TLS"), "{refused:?}");

    // The gateway and the dashboard speak TLS too.
    for door in [sb.api.clone(), sb.web.clone()] {
        let answer = https_get(&door.expect("a door"), &dir.join("ca.pem"));
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    // Tokens and passwords stay off plaintext to other machines: 0.0.0.0 is not loopback as
    // far as the CLI can tell (it reaches this machine, so nothing leaves it here).
    let mut plain_sb = Sandbox::with_server();
    let port = plain_sb
        .address()
        .rsplit_once(':')
        .expect("host:port")
        .1
        .to_owned();
    plain_sb.address = Some(format!("0.0.0.0:{port}"));
    let refused = plain_sb.micro(&["login", "--username", "admin", "--password", "micro"]);
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("refusing to send a token in plaintext"),
        "{refused:?}"
    );
    ok(
        &plain_sb.micro(&[
            "--insecure",
            "login",
            "--username",
            "admin",
            "--password",
            "micro",
        ]),
        "login with --insecure",
    );
}
