//! [`KeySealer`]: seals config secrets with ChaCha20-Poly1305 under a key the server generates
//! on first start and keeps in a file only its user can read.
//!
//! A sealed value is `nonce (12 bytes) || ciphertext || tag`; every seal draws a fresh random
//! nonce, so sealing the same value twice gives different bytes.

use std::path::Path;

use micro_core::{Error, config::Sealer};
use ring::{
    aead::{self, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    rand::{SecureRandom, SystemRandom},
};

const ID: &str = "micro.config";
const KEY_LEN: usize = 32;

/// Seals with a 256-bit key.
pub struct KeySealer {
    key: LessSafeKey,
    random: SystemRandom,
}

impl std::fmt::Debug for KeySealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeySealer(..)")
    }
}

impl KeySealer {
    /// The key in `path`, made (mode 0600) if the file does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, Error> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path)?,
            Err(e) => {
                return Err(Error::internal(
                    ID,
                    format!("cannot read the config key {}: {e}", path.display()),
                ));
            }
        };
        if bytes.len() != KEY_LEN {
            return Err(Error::internal(
                ID,
                format!(
                    "the config key {} is damaged ({} bytes, expected {KEY_LEN}); restore it from a backup — without it, stored secrets cannot be read",
                    path.display(),
                    bytes.len()
                ),
            ));
        }
        Self::from_bytes(&bytes)
    }

    /// The key every server sharing `store` uses (made by the first).
    pub async fn shared(store: &dyn micro_core::store::Store) -> Result<Self, Error> {
        let bytes = crate::shared_key(store, "config", || {
            let mut key = vec![0u8; KEY_LEN];
            SystemRandom::new()
                .fill(&mut key)
                .map_err(|_| Error::internal(ID, "no randomness for the config key"))?;
            Ok(key)
        })
        .await?;
        if bytes.len() != KEY_LEN {
            return Err(Error::internal(
                ID,
                "the shared config key on the store is damaged; stored secrets cannot be read",
            ));
        }
        Self::from_bytes(&bytes)
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let key = UnboundKey::new(&aead::CHACHA20_POLY1305, bytes)
            .map_err(|_| Error::internal(ID, "invalid config key"))?;
        Ok(Self {
            key: LessSafeKey::new(key),
            random: SystemRandom::new(),
        })
    }
}

fn create(path: &Path) -> Result<Vec<u8>, Error> {
    let fail = |e: std::io::Error| {
        Error::internal(
            ID,
            format!("cannot write the config key {}: {e}", path.display()),
        )
    };
    let mut key = vec![0u8; KEY_LEN];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| Error::internal(ID, "no randomness for the config key"))?;
    crate::write_key_file(path, &key).map_err(fail)?;
    Ok(key)
}

impl Sealer for KeySealer {
    fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, Error> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| Error::internal(ID, "no randomness to seal a secret"))?;
        let mut sealed = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut sealed,
            )
            .map_err(|_| Error::internal(ID, "failed to seal a secret"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, Error> {
        let damaged = || {
            Error::internal(
                ID,
                "a stored secret does not open with this server's key (was config.key replaced?)",
            )
        };
        if sealed.len() < NONCE_LEN {
            return Err(damaged());
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| damaged())?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut body)
            .map_err(|_| damaged())?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_open_and_keys_persist() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("server/config.key");
        let sealer = KeySealer::load_or_create(&path).expect("create");
        let sealed = sealer.seal(b"hunter2").expect("seal");
        assert!(
            !sealed.windows(7).any(|w| w == b"hunter2"),
            "sealed is not clear"
        );
        assert_ne!(
            sealed,
            sealer.seal(b"hunter2").expect("seal"),
            "fresh nonce"
        );
        let again = KeySealer::load_or_create(&path).expect("load");
        assert_eq!(again.open(&sealed).expect("open"), b"hunter2");
        let mut tampered = sealed.clone();
        *tampered.last_mut().expect("bytes") ^= 1;
        assert_eq!(again.open(&tampered).expect_err("tampered").code, 500);
        std::fs::write(&path, b"short").expect("write");
        let err = KeySealer::load_or_create(&path).expect_err("damaged key");
        assert!(err.detail.contains("damaged"), "{err:?}");
    }
}
