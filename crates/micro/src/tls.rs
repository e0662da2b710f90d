//! TLS to the platform, and the rule that a token never crosses a network in the clear.
//!
//! Tokens are bearer credentials: whoever reads one on the wire is its account until it
//! expires. So this process reaches the platform over TLS (rustls, verifying the server) when
//! told to — `MICRO_TLS=1`, with `MICRO_TLS_CA=FILE` naming the CA to trust (else the system's
//! roots) — and refuses to send a token in plaintext to anything but a loopback address unless
//! `MICRO_INSECURE=1` says the network is trusted.
//!
//! A server serving TLS marks its own nodes' addresses secure ([`mark_secure`]), and nodes
//! registered with metadata `transport=tls` are dialled over TLS too.

use std::{
    collections::HashSet,
    net::IpAddr,
    sync::{Arc, LazyLock, RwLock},
};

use micro_core::Error;
use tokio_rustls::{
    TlsConnector,
    rustls::{
        self,
        pki_types::{CertificateDer, ServerName, pem::PemObject},
    },
};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

const ID: &str = "micro.tls";

/// Node metadata announcing that a node serves TLS (`transport=tls`).
pub const TRANSPORT_METADATA: &str = "transport";

/// How this process verifies the servers it reaches over TLS.
#[derive(Debug, Clone, Default)]
pub struct Tls {
    /// PEM of the CA to trust; `None` trusts the system's roots.
    pub ca: Option<Vec<u8>>,
}

impl Tls {
    /// `MICRO_TLS` (`1`/`true`/`on`) and `MICRO_TLS_CA` (a PEM file); `None` without TLS.
    pub fn from_env() -> Result<Option<Self>, Error> {
        let on = truthy("MICRO_TLS");
        let ca_path = std::env::var("MICRO_TLS_CA").ok().filter(|p| !p.is_empty());
        if !on && ca_path.is_none() {
            return Ok(None);
        }
        let ca = ca_path
            .map(|path| {
                std::fs::read(&path).map_err(|e| {
                    Error::bad_request(
                        ID,
                        format!("cannot read the CA in MICRO_TLS_CA ({path}): {e}"),
                    )
                })
            })
            .transpose()?;
        Ok(Some(Self { ca }))
    }

    /// The rustls client configuration: ring, the CA or the system's roots, ALPN h2.
    fn rustls(&self) -> Result<rustls::ClientConfig, Error> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca {
            Some(pem) => {
                for cert in CertificateDer::pem_slice_iter(pem) {
                    let cert = cert.map_err(|e| {
                        Error::bad_request(ID, format!("cannot read the CA in MICRO_TLS_CA: {e}"))
                    })?;
                    roots.add(cert).map_err(|e| {
                        Error::bad_request(ID, format!("cannot trust the CA in MICRO_TLS_CA: {e}"))
                    })?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                for error in &found.errors {
                    tracing::warn!(%error, "cannot read some of the system's CA certificates");
                }
                roots.add_parsable_certificates(found.certs);
            }
        }
        if roots.is_empty() {
            return Err(Error::bad_request(
                ID,
                match &self.ca {
                    Some(_) => "no certificate in the CA of MICRO_TLS_CA",
                    None => "no CA certificate found on this system: name one with MICRO_TLS_CA",
                },
            ));
        }
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::internal(ID, format!("cannot set up TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }

    fn client_config(&self, host: &str) -> ClientTlsConfig {
        let config = ClientTlsConfig::new().domain_name(host);
        match &self.ca {
            Some(ca) => config.ca_certificate(Certificate::from_pem(ca)),
            None => config.with_native_roots(),
        }
    }
}

struct State {
    /// Set by [`configure`], else read from the environment on first use.
    tls: Option<Tls>,
    /// The rustls configuration made from `tls`, once a node is dialled over TLS.
    client: Option<Arc<rustls::ClientConfig>>,
    secure: HashSet<String>,
    /// Set by [`allow_insecure`], else `MICRO_INSECURE`.
    insecure: bool,
}

fn truthy(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "on" | "yes"
        )
    })
}

static STATE: LazyLock<RwLock<State>> = LazyLock::new(|| {
    RwLock::new(State {
        tls: Tls::from_env().ok().flatten(),
        client: None,
        secure: HashSet::new(),
        insecure: truthy("MICRO_INSECURE"),
    })
});

/// Sets how this process verifies servers over TLS (`None`: plaintext to the platform).
pub fn configure(tls: Option<Tls>) {
    let mut state = STATE.write().unwrap_or_else(|p| p.into_inner());
    state.tls = tls;
    state.client = None;
}

/// What dials `address` over TLS, verifying the server as configured (the CA of
/// [`Tls::ca`], else the system's roots), offering HTTP/2; and the name the server's
/// certificate must carry.
pub(crate) fn connector(address: &str) -> Result<(TlsConnector, ServerName<'static>), Error> {
    let name = ServerName::try_from(host(address).to_owned())
        .map_err(|e| Error::bad_request(ID, format!("cannot use TLS to {address}: {e}")))?;
    let tls = {
        let state = STATE.read().unwrap_or_else(|p| p.into_inner());
        if let Some(config) = &state.client {
            return Ok((TlsConnector::from(config.clone()), name));
        }
        state.tls.clone().unwrap_or_default()
    };
    // Made outside the lock (reading the system's roots takes a while), kept by the first.
    let config = Arc::new(tls.rustls()?);
    let mut state = STATE.write().unwrap_or_else(|p| p.into_inner());
    let config = state.client.get_or_insert(config).clone();
    Ok((TlsConnector::from(config), name))
}

/// Whether this process reaches the platform over TLS.
pub fn enabled() -> bool {
    STATE
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .tls
        .is_some()
}

/// Dials `address` over TLS from now on (a server's own nodes; a node registered with
/// `transport=tls` is dialled over TLS without being marked, see [`serves_tls`]).
pub fn mark_secure(address: &str) {
    /// A bound all the same (what this process marks is its own addresses).
    const CAP: usize = 65_536;
    let mut state = STATE.write().unwrap_or_else(|p| p.into_inner());
    if !state.secure.contains(address) && state.secure.len() < CAP {
        state.secure.insert(address.to_owned());
    }
}

/// Whether `node` is dialled over TLS: it says so in its metadata (`transport=tls`), or its
/// address was marked secure by this process.
///
/// Read from the node itself, not remembered: a registrant must not be able to fill a
/// process-wide set so that later TLS nodes are dialled in plaintext.
pub fn serves_tls(node: &micro_core::Node) -> bool {
    node.metadata
        .get(TRANSPORT_METADATA)
        .is_some_and(|t| t == "tls")
        || is_secure(&node.address)
}

/// Whether `address` is dialled over TLS.
pub fn is_secure(address: &str) -> bool {
    STATE
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .secure
        .contains(address)
}

/// Whether tokens may go in plaintext to other machines (`MICRO_INSECURE=1`, or
/// [`allow_insecure`]).
pub fn insecure_allowed() -> bool {
    STATE.read().unwrap_or_else(|p| p.into_inner()).insecure
}

/// Lets tokens go in plaintext to other machines (a trusted network: `micro --insecure`).
pub fn allow_insecure(allowed: bool) {
    STATE.write().unwrap_or_else(|p| p.into_inner()).insecure = allowed;
}

/// The host of `host:port` (`[::1]:80` → `::1`).
fn host(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// Whether `address` (`host:port`) stays on this machine.
pub fn is_loopback(address: &str) -> bool {
    let host = host(address);
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Refuses to send a token to `address` in plaintext unless it is a loopback address or the
/// user opted in (`MICRO_INSECURE=1`, `micro --insecure`).
pub fn check_token_transport(address: &str, secure: bool, insecure: bool) -> Result<(), Error> {
    if secure || insecure || address.split(',').map(str::trim).all(is_loopback) {
        return Ok(());
    }
    Err(Error::bad_request(
        ID,
        format!(
            "refusing to send a token in plaintext to {address}: use TLS (micro env add NAME {address} --tls, \
             or MICRO_TLS=1 and MICRO_TLS_CA=FILE), or say the network is trusted with --insecure (MICRO_INSECURE=1)"
        ),
    ))
}

/// A channel endpoint for `host:port`, over TLS when `secure` (verifying the server with the
/// configured CA, else the system's roots).
pub(crate) fn endpoint(address: &str, secure: bool) -> Result<Endpoint, Error> {
    let tls = secure.then(|| {
        STATE
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .tls
            .clone()
            .unwrap_or_default()
    });
    endpoint_with(address, tls.as_ref())
}

/// A channel endpoint for `host:port`: plaintext without `tls`, else TLS verifying the server
/// as `tls` says.
pub fn endpoint_with(address: &str, tls: Option<&Tls>) -> Result<Endpoint, Error> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let endpoint = Endpoint::from_shared(format!("{scheme}://{address}")).map_err(|e| {
        Error::bad_request("micro.client", format!("invalid address {address:?}: {e}"))
    })?;
    match tls {
        None => Ok(endpoint),
        Some(tls) => endpoint
            .tls_config(tls.client_config(host(address)))
            .map_err(|e| Error::bad_request(ID, format!("cannot use TLS to {address}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_stay_on_this_machine_unless_encrypted_or_allowed() {
        for local in ["127.0.0.1:8081", "localhost:1", "[::1]:80", "127.9.9.9:1"] {
            assert!(is_loopback(local), "{local}");
            assert!(check_token_transport(local, false, false).is_ok());
        }
        let err = check_token_transport("10.0.0.1:8081", false, false).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(err.detail.contains("--insecure"), "{}", err.detail);
        assert!(check_token_transport("10.0.0.1:8081", true, false).is_ok());
        assert!(check_token_transport("example.com:8081", false, true).is_ok());
    }
}
