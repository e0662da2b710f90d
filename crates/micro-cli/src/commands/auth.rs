//! `micro login`, `logout`, `user …` and `auth …`: logging in to an env and namespace, and
//! managing the accounts and rules of a namespace.

use std::io::{BufRead, IsTerminal, Write};

use micro::{auth::Login, remote::Connection, status::from_status};
use micro_proto::auth::{
    self as pb, accounts_client::AccountsClient, auth_client::AuthClient, rules_client::RulesClient,
};
use tonic::transport::Channel;

use crate::{
    cli::{
        AuthCommand, AuthCreateCommand, AuthDeleteCommand, AuthListCommand, NamespaceCommand,
        UserCommand, UserSetCommand,
    },
    commands::services::table,
    context::Context,
    failure::Failure,
    tokens::{Saved, TokenFile},
};

const ID: &str = "micro.auth";

fn failed(status: &tonic::Status) -> Failure {
    Failure::from(from_status(ID, status))
}

/// `value`, or what the user types after `prompt` (without echo for secrets).
fn ask(value: Option<String>, prompt: &str, secret: bool) -> Result<String, Failure> {
    if let Some(v) = value {
        return Ok(v);
    }
    let typed = if secret && std::io::stdin().is_terminal() {
        rpassword::prompt_password(prompt)
            .map_err(|e| Failure::new(format!("Failed to read the password: {e}")))?
    } else {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::new(format!("Failed to read from the terminal: {e}")))?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if typed.is_empty() {
        return Err(Failure::new(format!(
            "Nothing entered for {:?}",
            prompt.trim_end_matches([':', ' '])
        )));
    }
    Ok(typed)
}

/// `micro login`.
pub(crate) async fn login(
    ctx: &Context,
    username: Option<String>,
    password: Option<String>,
) -> Result<(), Failure> {
    let username = ask(username, "Enter username: ", false)?;
    let password = ask(password, "Enter password: ", true)?;
    ctx.may_send_secrets()?;
    let channel = ctx.connect_anonymous().await?;
    let conn = Connection::from_channel(channel.clone(), &ctx.address);
    let tokens = micro::auth::login(
        &conn,
        &ctx.namespace,
        &Login::Secret {
            id: username,
            secret: password,
        },
    )
    .await
    .map_err(|e| {
        if e.code == 401 {
            Failure::with_code(2, e.detail)
        } else {
            e.into()
        }
    })?;
    // Asked as the new login: a locked-down namespace answers only accounts.
    micro::auth::set_token(Some(tokens.access_token.clone()));
    let account = AuthClient::new(channel)
        .inspect(ctx.request(pb::InspectRequest {
            token: tokens.access_token.clone(),
        })?)
        .await
        .map_err(|s| failed(&s))?
        .into_inner()
        .account
        .unwrap_or_default();
    let mut file = TokenFile::load()?;
    file.set(
        &ctx.env,
        &ctx.namespace,
        Saved {
            id: account.id,
            name: account.name,
            tokens,
        },
    );
    file.save()?;
    println!("Successfully logged in.");
    Ok(())
}

/// `micro logout`.
pub(crate) fn logout(ctx: &Context) -> Result<(), Failure> {
    let mut file = TokenFile::load()?;
    if file.remove(&ctx.env, &ctx.namespace) {
        file.save()?;
    }
    Ok(())
}

/// The saved login serving this command, or a failure saying to log in.
fn saved(ctx: &Context) -> Result<Saved, Failure> {
    let file = TokenFile::load()?;
    ctx.login_namespace(&file)
        .and_then(|ns| file.get(&ctx.env, &ns).cloned())
        .ok_or_else(|| {
            Failure::new(format!(
                "You are not logged in to {} (namespace {}); log in with: micro login",
                ctx.env, ctx.namespace
            ))
        })
}

/// `micro user …`.
pub(crate) async fn user(ctx: &Context, action: Option<&UserCommand>) -> Result<(), Failure> {
    match action {
        None => {
            println!("{}", saved(ctx)?.name);
            Ok(())
        }
        Some(UserCommand::Token) => {
            saved(ctx)?;
            // Connecting refreshes a token about to expire.
            ctx.connect().await?;
            println!("{}", saved(ctx)?.tokens.access_token);
            Ok(())
        }
        Some(UserCommand::Namespace { action: None }) => {
            println!("{}", ctx.namespace);
            Ok(())
        }
        Some(UserCommand::Namespace {
            action: Some(NamespaceCommand::Set { namespace }),
        }) => {
            let mut config = ctx.config.clone();
            config.namespaces.insert(ctx.env.clone(), namespace.clone());
            config.save()
        }
        Some(UserCommand::Set {
            what:
                UserSetCommand::Password {
                    old_password,
                    new_password,
                },
        }) => {
            let me = saved(ctx)?;
            let old = ask(old_password.clone(), "Enter current password: ", true)?;
            let new = ask(new_password.clone(), "Enter new password: ", true)?;
            let channel = ctx.connect().await?;
            AccountsClient::new(channel)
                .change_secret(ctx.request(pb::ChangeSecretRequest {
                    id: me.id,
                    old_secret: old,
                    new_secret: new,
                })?)
                .await
                .map_err(|s| failed(&s))?;
            Ok(())
        }
    }
}

/// `micro auth …`.
pub(crate) async fn run(ctx: &Context, action: &AuthCommand) -> Result<(), Failure> {
    let channel: Channel = ctx.connect().await?;
    match action {
        AuthCommand::List {
            what: AuthListCommand::Accounts,
        } => {
            let accounts = AccountsClient::new(channel)
                .list(ctx.request(pb::ListAccountsRequest {})?)
                .await
                .map_err(|s| failed(&s))?
                .into_inner()
                .accounts;
            let rows: Vec<[String; 4]> = accounts
                .into_iter()
                .map(|a| [a.id, a.name, a.r#type, a.scopes.join(",")])
                .collect();
            print!("{}", table(["ID", "NAME", "TYPE", "SCOPES"], &rows));
            Ok(())
        }
        AuthCommand::List {
            what: AuthListCommand::Rules,
        } => {
            let rules = RulesClient::new(channel)
                .list(ctx.request(pb::ListRulesRequest {})?)
                .await
                .map_err(|s| failed(&s))?
                .into_inner()
                .rules;
            let rows: Vec<[String; 5]> = rules.into_iter().map(rule_row).collect();
            print!(
                "{}",
                table(["ID", "SCOPE", "ACCESS", "RESOURCE", "PRIORITY"], &rows)
            );
            Ok(())
        }
        AuthCommand::Create {
            what:
                AuthCreateCommand::Account {
                    id,
                    secret,
                    scopes,
                    name,
                    kind,
                },
        } => {
            let account = AuthClient::new(channel)
                .generate(ctx.request(pb::GenerateRequest {
                    id: id.clone(),
                    name: name.clone().unwrap_or_default(),
                    secret: secret.clone().unwrap_or_default(),
                    scopes: scopes.clone(),
                    metadata: Default::default(),
                    r#type: kind.clone(),
                })?)
                .await
                .map_err(|s| failed(&s))?
                .into_inner()
                .account
                .unwrap_or_default();
            if !account.secret.is_empty() {
                println!("secret: {}", account.secret);
            }
            Ok(())
        }
        AuthCommand::Create {
            what:
                AuthCreateCommand::Rule {
                    id,
                    scope,
                    resource,
                    access,
                    priority,
                },
        } => {
            let parsed = micro_core::auth::Resource::parse(resource)?;
            RulesClient::new(channel)
                .create(ctx.request(pb::CreateRuleRequest {
                    rule: Some(pb::Rule {
                        id: id.clone(),
                        scope: scope.clone(),
                        resource: Some(pb::Resource {
                            r#type: parsed.kind,
                            name: parsed.name,
                            endpoint: parsed.endpoint,
                        }),
                        access: access.clone(),
                        priority: *priority,
                    }),
                })?)
                .await
                .map_err(|s| failed(&s))?;
            Ok(())
        }
        AuthCommand::Delete {
            what: AuthDeleteCommand::Account { id },
        } => {
            AccountsClient::new(channel)
                .delete(ctx.request(pb::DeleteAccountRequest { id: id.clone() })?)
                .await
                .map_err(|s| failed(&s))?;
            Ok(())
        }
        AuthCommand::Delete {
            what: AuthDeleteCommand::Rule { id },
        } => {
            RulesClient::new(channel)
                .delete(ctx.request(pb::DeleteRuleRequest { id: id.clone() })?)
                .await
                .map_err(|s| failed(&s))?;
            Ok(())
        }
        AuthCommand::Verify { account, resource } => {
            let answer = AuthClient::new(channel)
                .verify(ctx.request(pb::VerifyRequest {
                    account_id: account.clone().unwrap_or_default(),
                    resource: resource.clone(),
                })?)
                .await
                .map_err(|s| failed(&s))?
                .into_inner();
            print!("{}", verdict(&answer));
            Ok(())
        }
    }
}

fn rule_row(r: pb::Rule) -> [String; 5] {
    let resource = r
        .resource
        .map(|x| format!("{}:{}:{}", x.r#type, x.name, x.endpoint))
        .unwrap_or_default();
    let scope = if r.scope.is_empty() {
        "<public>".to_owned()
    } else {
        r.scope
    };
    [r.id, scope, r.access, resource, r.priority.to_string()]
}

/// What `micro auth verify` prints.
fn verdict(answer: &pb::VerifyResponse) -> String {
    let decision = if answer.allowed { "granted" } else { "denied" };
    match &answer.rule {
        Some(rule) => {
            let [id, scope, access, resource, priority] = rule_row(rule.clone());
            format!(
                "{decision}\nrule: {id} (scope {scope}, {access}, resource {resource}, priority {priority})\nwhy: {}\n",
                answer.reason
            )
        }
        None => format!("{decision}\nrule: none matched\nwhy: {}\n", answer.reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_name_the_rule_or_say_none_matched() {
        let by_rule = verdict(&pb::VerifyResponse {
            allowed: true,
            rule: Some(pb::Rule {
                id: "authpublic".into(),
                scope: String::new(),
                resource: Some(pb::Resource {
                    r#type: "service".into(),
                    name: "auth".into(),
                    endpoint: "Auth.Token".into(),
                }),
                access: "granted".into(),
                priority: 0,
            }),
            reason: "the rule is public".into(),
        });
        assert_eq!(
            by_rule,
            "granted\nrule: authpublic (scope <public>, granted, resource service:auth:Auth.Token, priority 0)\nwhy: the rule is public\n"
        );
        let none = verdict(&pb::VerifyResponse {
            allowed: false,
            rule: None,
            reason: "no rule grants access without an account".into(),
        });
        assert!(none.starts_with("denied\nrule: none matched\n"), "{none}");
    }
}
