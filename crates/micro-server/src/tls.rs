//! TLS on every listener (`micro server --tls-cert FILE --tls-key FILE [--tls-ca FILE]`):
//! rustls with ring, the one TLS stack. The gRPC port gets it through tonic, the gateway and
//! the dashboard through tokio-rustls; the server's own calls to its nodes, and the services
//! its runtime starts (`MICRO_TLS`, `MICRO_TLS_CA`), verify the certificate with `--tls-ca`
//! (else the system's roots).

use std::{path::PathBuf, sync::Arc};

use micro_core::Error;
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        self,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    },
};
use tonic::transport::{Identity, ServerTlsConfig};

use crate::TlsFiles;

const ID: &str = "micro.server";

/// What the listeners serve, loaded once at start.
pub(crate) struct Served {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    ca: Option<PathBuf>,
    acceptor: TlsAcceptor,
}

fn unreadable(what: &str, path: &std::path::Path, e: impl std::fmt::Display) -> Error {
    Error::bad_request(
        ID,
        format!("cannot read the TLS {what} {}: {e}", path.display()),
    )
}

impl Served {
    /// Reads and checks the files; the server does not start with a pair that does not serve.
    pub(crate) fn load(files: &TlsFiles) -> Result<Self, Error> {
        let cert_pem =
            std::fs::read(&files.cert).map_err(|e| unreadable("certificate", &files.cert, e))?;
        let key_pem = std::fs::read(&files.key).map_err(|e| unreadable("key", &files.key, e))?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| unreadable("certificate", &files.cert, e))?;
        if chain.is_empty() {
            return Err(unreadable(
                "certificate",
                &files.cert,
                "no certificate in it",
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| unreadable("key", &files.key, e))?;
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::internal(ID, format!("cannot set up TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            Error::bad_request(
                ID,
                format!(
                    "the TLS certificate {} and key {} do not go together: {e}",
                    files.cert.display(),
                    files.key.display()
                ),
            )
        })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        if let Some(ca) = &files.ca {
            let pem = std::fs::read(ca).map_err(|e| unreadable("CA", ca, e))?;
            micro::tls::configure(Some(micro::tls::Tls { ca: Some(pem) }));
        } else {
            micro::tls::configure(Some(micro::tls::Tls { ca: None }));
        }
        Ok(Self {
            cert_pem,
            key_pem,
            ca: files.ca.clone(),
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// The gRPC port's TLS.
    pub(crate) fn grpc(&self) -> ServerTlsConfig {
        ServerTlsConfig::new().identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
    }

    /// The HTTP listeners' TLS.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// What the runtime's services need to reach the server over TLS.
    pub(crate) fn service_env(&self) -> Vec<(String, String)> {
        let mut env = vec![("MICRO_TLS".to_owned(), "1".to_owned())];
        if let Some(ca) = &self.ca {
            env.push(("MICRO_TLS_CA".to_owned(), ca.display().to_string()));
        }
        env
    }
}
