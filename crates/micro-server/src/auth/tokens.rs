//! Access tokens: JWTs signed with the server's Ed25519 key (EdDSA, nothing else accepted).
//!
//! The key is made on first start and kept (mode 0600) at `MICRO_HOME/server/auth.key`, so
//! tokens survive a restart; a server without a home makes one per process. A token carries the
//! whole account (id, name, type, issuer, scopes), so checking a call needs no lookup.

use std::{collections::HashMap, path::Path, sync::RwLock, time::Duration};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use micro_core::{
    Error,
    auth::{Account, AccountType},
};
use ring::{
    rand::SystemRandom,
    signature::{Ed25519KeyPair, KeyPair},
};
use serde::{Deserialize, Serialize};

const ID: &str = "micro.auth";

/// Signs and checks access tokens.
pub(crate) struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Tokens whose signature was checked, with their account and expiry: a signature check
    /// costs more than the rest of a gateway call, and a client sends the same token many times.
    verified: RwLock<HashMap<String, Holder>>,
}

/// What a verified token says: its account, its expiry (unix seconds) and when it was issued
/// (unix milliseconds, so a revocation can void exactly the tokens issued before it).
#[derive(Debug, Clone)]
pub(crate) struct Holder {
    pub(crate) account: Account,
    pub(crate) expiry: i64,
    pub(crate) issued_ms: i64,
    /// The account's generation when the token was issued (see `revoked`).
    pub(crate) generation: u64,
    /// The one service the token is for (a token the proxy passes on), or `None` for a login's.
    pub(crate) audience: Option<String>,
}

/// At most this many verified tokens are remembered (then the memory starts over).
const VERIFIED_CAP: usize = 4096;

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(..)")
    }
}

/// What an access token says.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The account id.
    sub: String,
    /// The namespace that issued it.
    iss: String,
    name: String,
    #[serde(rename = "type")]
    kind: AccountType,
    scopes: Vec<String>,
    iat: i64,
    /// `iat` in milliseconds (tokens without it count from the start of `iat`'s second).
    #[serde(default)]
    iat_ms: i64,
    exp: i64,
    /// The service a passed-on token is for; a login's token has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aud: Option<String>,
    /// Unique per token, so two issued in the same second differ.
    jti: String,
    /// The account's generation when issued (see `revoked`); 0 in tokens issued before
    /// generations.
    #[serde(default)]
    generation: u64,
}

impl TokenKeys {
    /// The key in `path`, made if missing.
    pub(crate) fn load_or_create(path: &Path) -> Result<Self, Error> {
        let pkcs8 = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let pkcs8 = generate()?;
                write_new(path, &pkcs8)?;
                pkcs8
            }
            Err(e) => {
                return Err(Error::internal(
                    ID,
                    format!("cannot read the token key {}: {e}", path.display()),
                ));
            }
        };
        Self::from_pkcs8(&pkcs8).map_err(|e| {
            Error::internal(
                ID,
                format!(
                    "the token key {} is damaged ({}); move it away to make a new one (everyone will have to log in again)",
                    path.display(),
                    e.detail
                ),
            )
        })
    }

    /// The key every server sharing `store` signs with (made by the first).
    pub(crate) async fn shared(store: &dyn micro_core::store::Store) -> Result<Self, Error> {
        let pkcs8 = micro_backends::shared_key(store, "tokens", generate).await?;
        Self::from_pkcs8(&pkcs8).map_err(|e| {
            Error::internal(
                ID,
                format!(
                    "the shared token key on the store is damaged ({})",
                    e.detail
                ),
            )
        })
    }

    /// A key for this process only.
    pub(crate) fn ephemeral() -> Result<Self, Error> {
        Self::from_pkcs8(&generate()?)
    }

    fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, Error> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8)
            .map_err(|e| Error::internal(ID, format!("not an Ed25519 key: {e}")))?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = 0;
        // Expiry is checked by `verify_at`, against the same clock as remembered tokens.
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        Ok(Self {
            encoding: EncodingKey::from_ed_der(pkcs8),
            decoding: DecodingKey::from_ed_der(pair.public_key().as_ref()),
            validation,
            verified: RwLock::new(HashMap::new()),
        })
    }

    /// A token for `account` of `generation`, valid for `ttl` from `now_ms` (unix
    /// milliseconds).
    pub(crate) fn issue(
        &self,
        account: &Account,
        now_ms: i64,
        ttl: Duration,
        generation: u64,
    ) -> Result<String, Error> {
        let now = now_ms.div_euclid(1000);
        let expiry = now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
        self.sign(account, now_ms, expiry, generation, None)
    }

    /// A token for `account` that opens `service` only: what the proxy passes on to the service
    /// it calls instead of the caller's own token. It keeps the original's issue time (so a
    /// revocation voids it too) and expiry.
    pub(crate) fn issue_for(&self, holder: &Holder, service: &str) -> Result<String, Error> {
        self.sign(
            &holder.account,
            holder.issued_ms,
            holder.expiry,
            holder.generation,
            Some(service.to_owned()),
        )
    }

    fn sign(
        &self,
        account: &Account,
        issued_ms: i64,
        expiry: i64,
        generation: u64,
        aud: Option<String>,
    ) -> Result<String, Error> {
        let claims = Claims {
            sub: account.id.clone(),
            iss: account.issuer.clone(),
            name: account.name.clone(),
            kind: account.kind,
            scopes: account.scopes.clone(),
            iat: issued_ms.div_euclid(1000),
            iat_ms: issued_ms,
            exp: expiry,
            aud,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            generation,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &self.encoding)
            .map_err(|e| Error::internal(ID, format!("cannot sign a token: {e}")))
    }

    /// The account `token` stands for, if its signature holds and it has not expired.
    pub(crate) fn verify(&self, token: &str) -> Result<Account, Error> {
        self.verify_at(token, super::now()).map(|h| h.account)
    }

    /// What `token` says, if its signature holds and it has not expired as of `now` (unix
    /// seconds).
    pub(crate) fn verify_at(&self, token: &str, now: i64) -> Result<Holder, Error> {
        if let Some(holder) = self
            .verified
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
        {
            return if now < holder.expiry {
                Ok(holder.clone())
            } else {
                Err(expired())
            };
        }
        let holder = self.check(token)?;
        if now >= holder.expiry {
            return Err(expired());
        }
        let mut verified = self.verified.write().unwrap_or_else(|p| p.into_inner());
        if verified.len() >= VERIFIED_CAP {
            verified.clear();
        }
        verified.insert(token.to_owned(), holder.clone());
        Ok(holder)
    }

    /// Checks the signature and claims of `token`.
    fn check(&self, token: &str) -> Result<Holder, Error> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                let why = match e.kind() {
                    ErrorKind::ExpiredSignature => "the token has expired",
                    ErrorKind::InvalidSignature => "the token's signature does not match",
                    _ => "the token is not one this server issued",
                };
                Error::unauthorized(ID, format!("{why}: log in again (micro login)"))
            })?;
        let c = data.claims;
        let issued_ms = if c.iat_ms > 0 {
            c.iat_ms
        } else {
            c.iat.saturating_mul(1000)
        };
        Ok(Holder {
            account: Account {
                id: c.sub,
                name: c.name,
                kind: c.kind,
                issuer: c.iss,
                scopes: c.scopes,
                metadata: Default::default(),
            },
            expiry: c.exp,
            issued_ms,
            generation: c.generation,
            audience: c.aud,
        })
    }
}

fn expired() -> Error {
    Error::unauthorized(ID, "the token has expired: log in again (micro login)")
}

fn generate() -> Result<Vec<u8>, Error> {
    Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map(|doc| doc.as_ref().to_vec())
        .map_err(|_| Error::internal(ID, "no randomness for the token key"))
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    micro_backends::write_key_file(path, bytes).map_err(|e| {
        Error::internal(
            ID,
            format!("cannot write the token key {}: {e}", path.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::super::now;

    fn ms(secs: i64) -> i64 {
        secs * 1000
    }
    use super::*;

    fn admin() -> Account {
        Account {
            id: "admin".into(),
            name: "admin".into(),
            issuer: "micro".into(),
            scopes: vec!["admin".into()],
            ..Account::default()
        }
    }

    #[test]
    fn tokens_round_trip_and_keys_persist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.key");
        let keys = TokenKeys::load_or_create(&path).unwrap();
        let token = keys
            .issue(&admin(), ms(now()), Duration::from_secs(60), 0)
            .unwrap();
        assert_eq!(keys.verify(&token).unwrap(), admin());
        let again = TokenKeys::load_or_create(&path).unwrap();
        assert_eq!(again.verify(&token).unwrap(), admin(), "the key is kept");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn expired_altered_and_foreign_tokens_are_refused() {
        let keys = TokenKeys::ephemeral().unwrap();
        let expired = keys
            .issue(&admin(), ms(now() - 120), Duration::from_secs(60), 0)
            .unwrap();
        // Remembered as verified, and still refused once its time is up.
        let brief = keys
            .issue(&admin(), ms(now()), Duration::from_secs(60), 0)
            .unwrap();
        assert!(keys.verify_at(&brief, now()).is_ok());
        let err = keys.verify_at(&brief, now() + 60).unwrap_err();
        assert!(
            err.detail.contains("expired"),
            "a remembered token expires: {err:?}"
        );
        let err = keys.verify(&expired).unwrap_err();
        assert_eq!(err.code, 401);
        assert!(err.detail.contains("expired"), "{err:?}");

        // Claims altered: admin scope given to someone else, signature kept.
        let token = keys
            .issue(&admin(), ms(now()), Duration::from_secs(60), 0)
            .unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let claims = String::from_utf8(b64.decode(parts[1]).unwrap()).unwrap();
        let forged = b64.encode(claims.replace("\"sub\":\"admin\"", "\"sub\":\"mallory\""));
        let tampered = format!("{}.{}.{}", parts[0], forged, parts[2]);
        assert_eq!(keys.verify(&tampered).unwrap_err().code, 401);

        let other = TokenKeys::ephemeral().unwrap();
        assert_eq!(
            other.verify(&token).unwrap_err().code,
            401,
            "another server's key"
        );
        assert_eq!(keys.verify("garbage").unwrap_err().code, 401);

        // The "none" algorithm is never accepted.
        let none = format!(
            "{}.{}.",
            b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
            parts[1]
        );
        assert_eq!(keys.verify(&none).unwrap_err().code, 401);
    }
}
