//! The `auth` platform service: `micro.auth.Auth`, `micro.auth.Accounts` and `micro.auth.Rules`
//! over the [`Authority`]. Everything happens in the caller's namespace; management needs scope
//! `admin` there (or a `micro` admin).

use micro_core::{
    Error,
    auth::{Account, AccountType, Resource},
};
use micro_proto::auth::{self as pb, accounts_server, auth_server, rules_server};
use tonic::{Request, Response, Status};

use micro::convert::auth::{account_to_pb, rule_from_pb, rule_to_pb};

use super::answer::answer;
use crate::auth::{Authority, Caller};

const ID: &str = "micro.auth";

/// Serves the platform's accounts, tokens and rules.
#[derive(Clone, Debug)]
pub struct AuthService {
    authority: Authority,
}

impl AuthService {
    /// Serves `authority`.
    pub fn new(authority: Authority) -> Self {
        Self { authority }
    }

    /// The three tonic servers of this service.
    pub fn into_servers(
        self,
    ) -> (
        auth_server::AuthServer<Self>,
        accounts_server::AccountsServer<Self>,
        rules_server::RulesServer<Self>,
    ) {
        (
            auth_server::AuthServer::new(self.clone()),
            accounts_server::AccountsServer::new(self.clone()),
            rules_server::RulesServer::new(self),
        )
    }
}

/// Admits an admin of the caller's namespace, for `what`.
fn admin<T>(what: &'static str) -> impl FnOnce(&Request<T>) -> Result<Caller, Error> {
    move |req| {
        let caller = Caller::of(req)?;
        caller.require_admin(what)?;
        Ok(caller)
    }
}

/// Admits anyone: the method decides from the body (a login, a token to check).
fn anyone<T>(_: &Request<T>) -> Result<(), Error> {
    Ok(())
}

fn rfc3339(unix: i64) -> String {
    let at =
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(unix).unwrap_or(0));
    humantime::format_rfc3339_seconds(at).to_string()
}

#[tonic::async_trait]
impl auth_server::Auth for AuthService {
    async fn generate(
        &self,
        req: Request<pb::GenerateRequest>,
    ) -> Result<Response<pb::GenerateResponse>, Status> {
        answer(req, admin("creating accounts"), |caller, body| async move {
            let id = if body.id.is_empty() {
                uuid::Uuid::new_v4().to_string()
            } else {
                body.id
            };
            let (secret, shown) = if body.secret.is_empty() {
                let made = self.authority.accounts().random_string(24)?;
                (made.clone(), made)
            } else {
                (body.secret, String::new())
            };
            let account = Account {
                name: if body.name.is_empty() {
                    id.clone()
                } else {
                    body.name
                },
                id,
                kind: AccountType::parse(&body.r#type)?,
                issuer: caller.namespace,
                scopes: body.scopes.into_iter().filter(|s| !s.is_empty()).collect(),
                metadata: body.metadata.into_iter().collect(),
            };
            self.authority.create_account(&account, &secret).await?;
            Ok(pb::GenerateResponse {
                account: Some(account_to_pb(account, shown)),
            })
        })
        .await
    }

    async fn token(
        &self,
        req: Request<pb::TokenRequest>,
    ) -> Result<Response<pb::TokenResponse>, Status> {
        let admit = |req: &Request<_>| Ok((Caller::of(req)?, self.authority.peer_of(req)));
        answer(req, admit, |(caller, peer), body| async move {
            let account = if !body.refresh_token.is_empty() {
                self.authority.redeem(&body.refresh_token).await?
            } else if !body.id.is_empty() && !body.secret.is_empty() {
                self.authority
                    .login(&caller.namespace, &body.id, &body.secret, peer)
                    .await?
            } else {
                return Err(Error::bad_request(
                    ID,
                    "Token needs an id (or name) and a secret, or a refresh_token",
                ));
            };
            let tokens = self.authority.tokens(&account).await?;
            Ok(pb::TokenResponse {
                token: Some(pb::Token {
                    access_token: tokens.access_token,
                    refresh_token: tokens.refresh_token,
                    created: rfc3339(tokens.created),
                    expiry: rfc3339(tokens.expiry),
                }),
            })
        })
        .await
    }

    async fn inspect(
        &self,
        req: Request<pb::InspectRequest>,
    ) -> Result<Response<pb::InspectResponse>, Status> {
        answer(req, anyone, |(), body| async move {
            let account = self
                .authority
                .inspect(micro_core::auth::bearer(&body.token))?;
            Ok(pb::InspectResponse {
                account: Some(account_to_pb(account, String::new())),
            })
        })
        .await
    }

    async fn verify(
        &self,
        req: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResponse>, Status> {
        answer(req, admin("verifying access"), |caller, body| async move {
            let resource = Resource::parse(&body.resource)?;
            let account = if body.account_id.is_empty() {
                None
            } else {
                let accounts = self.authority.accounts();
                Some(accounts.get(&caller.namespace, &body.account_id).await?)
            };
            let asking = Caller {
                namespace: caller.namespace,
                account,
                token: None,
                enforced: true,
                peer: None,
            };
            let (allowed, rule, reason) = self.authority.decide(&asking, &resource).await?;
            Ok(pb::VerifyResponse {
                allowed,
                rule: rule.map(rule_to_pb),
                reason,
            })
        })
        .await
    }

    async fn check(
        &self,
        req: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        answer(req, anyone, |(), body| async move {
            if body.service.is_empty() || body.endpoint.is_empty() {
                return Err(Error::bad_request(
                    ID,
                    "Check needs the service and the endpoint called (helloworld, Helloworld.Call)",
                ));
            }
            let namespace = if body.namespace.is_empty() {
                micro_core::metadata::DEFAULT_NAMESPACE
            } else {
                &body.namespace
            };
            let resource = Resource::service(&body.service, &body.endpoint);
            let checked = self
                .authority
                .check(&body.token, namespace, &resource)
                .await?;
            let (code, detail) = match checked.verdict {
                Ok(()) => (0, String::new()),
                Err(e) => (i32::from(e.code), e.detail),
            };
            Ok(pb::CheckResponse {
                allowed: code == 0,
                account: checked.account.map(|a| account_to_pb(a, String::new())),
                code,
                detail,
                expiry: checked.expiry,
            })
        })
        .await
    }
}

#[tonic::async_trait]
impl accounts_server::Accounts for AuthService {
    async fn list(
        &self,
        req: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsResponse>, Status> {
        answer(req, admin("listing accounts"), |caller, _| async move {
            let accounts = self.authority.accounts().list(&caller.namespace).await?;
            Ok(pb::ListAccountsResponse {
                accounts: accounts
                    .into_iter()
                    .map(|a| account_to_pb(a, String::new()))
                    .collect(),
            })
        })
        .await
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteAccountRequest>,
    ) -> Result<Response<pb::DeleteAccountResponse>, Status> {
        answer(req, admin("deleting accounts"), |caller, body| async move {
            self.authority
                .delete_account(&caller.namespace, &body.id)
                .await?;
            Ok(pb::DeleteAccountResponse {})
        })
        .await
    }

    async fn change_secret(
        &self,
        req: Request<pb::ChangeSecretRequest>,
    ) -> Result<Response<pb::ChangeSecretResponse>, Status> {
        let admit = |req: &Request<_>| Ok((Caller::of(req)?, self.authority.peer_of(req)));
        answer(req, admit, |(caller, peer), body| async move {
            let ns = &caller.namespace;
            let is_self = caller
                .account
                .as_ref()
                .is_some_and(|a| a.id == body.id && &a.issuer == ns);
            // Someone else's secret: an admin may reset it. One's own: only with the old secret.
            if is_self
                || caller
                    .require_admin("changing another account's secret")
                    .is_err()
            {
                if body.old_secret.is_empty() {
                    return Err(Error::bad_request(
                        ID,
                        "changing a secret needs the old one (old_secret)",
                    ));
                }
                self.authority
                    .login(ns, &body.id, &body.old_secret, peer)
                    .await
                    .map_err(|e| {
                        if e.code == 429 {
                            e
                        } else {
                            Error::forbidden(ID, "the old secret is wrong; nothing changed")
                        }
                    })?;
            }
            self.authority
                .set_secret(ns, &body.id, &body.new_secret)
                .await?;
            Ok(pb::ChangeSecretResponse {})
        })
        .await
    }
}

#[tonic::async_trait]
impl rules_server::Rules for AuthService {
    async fn create(
        &self,
        req: Request<pb::CreateRuleRequest>,
    ) -> Result<Response<pb::CreateRuleResponse>, Status> {
        answer(req, admin("creating rules"), |caller, body| async move {
            let rule = body
                .rule
                .ok_or_else(|| Error::bad_request(ID, "Create needs a rule"))?;
            let rule = rule_from_pb(rule)?;
            self.authority.create_rule(&caller.namespace, &rule).await?;
            Ok(pb::CreateRuleResponse {})
        })
        .await
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteRuleRequest>,
    ) -> Result<Response<pb::DeleteRuleResponse>, Status> {
        answer(req, admin("deleting rules"), |caller, body| async move {
            self.authority
                .delete_rule(&caller.namespace, &body.id)
                .await?;
            Ok(pb::DeleteRuleResponse {})
        })
        .await
    }

    async fn list(
        &self,
        req: Request<pb::ListRulesRequest>,
    ) -> Result<Response<pb::ListRulesResponse>, Status> {
        answer(req, admin("listing rules"), |caller, _| async move {
            let rules = self.authority.rules(&caller.namespace).await?;
            Ok(pb::ListRulesResponse {
                rules: rules.iter().cloned().map(rule_to_pb).collect(),
            })
        })
        .await
    }
}
