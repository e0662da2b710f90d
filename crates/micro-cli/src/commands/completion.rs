//! Shell completion: `micro completion bash|zsh|fish` prints a script that asks
//! `micro __complete WORDS...` for the candidates of the last word — the same
//! [`crate::complete::candidates`] as the interactive CLI, so service names and endpoint words
//! come from the registry as the user types.

use crate::{
    cli::{Cli, CompletionArgs},
    complete::{Known, candidates},
    context::Context,
    failure::Failure,
};

/// `micro completion SHELL`.
pub(crate) fn script(args: &CompletionArgs) -> Result<(), Failure> {
    let script = match args.shell.as_str() {
        "bash" => BASH,
        "zsh" => ZSH,
        "fish" => FISH,
        other => {
            return Err(Failure::new(format!(
                "no completion for shell {other:?}: bash, zsh or fish"
            )));
        }
    };
    print!("{script}");
    Ok(())
}

/// `micro __complete WORDS...`: one candidate a line. The registry is asked when it can be
/// reached quickly; without it, only the CLI's own words complete.
pub(crate) async fn candidates_of(cli: &Cli, words: &[String]) -> Result<(), Failure> {
    let known = match Context::new(cli) {
        Ok(ctx) => known(&ctx).await,
        Err(_) => Known::default(),
    };
    for candidate in candidates(words, &known) {
        println!("{candidate}");
    }
    Ok(())
}

/// What the registry holds in the namespace, or nothing if it does not answer within a second.
pub(crate) async fn known(ctx: &Context) -> Known {
    let listed = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        let registry = ctx.registry().await.ok()?;
        micro_core::Registry::list_services(&registry, &ctx.namespace)
            .await
            .ok()
    })
    .await;
    match listed {
        Ok(Some(services)) => Known::new(&services),
        _ => Known::default(),
    }
}

const BASH: &str = r#"# micro completion for bash: source <(micro completion bash)
_micro() {
    local IFS=$'\n'
    COMPREPLY=($(micro __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
}
complete -o default -F _micro micro
"#;

const ZSH: &str = r#"#compdef micro
# micro completion for zsh: source <(micro completion zsh)
_micro() {
    local -a candidates
    candidates=("${(@f)$(micro __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    compadd -a candidates
}
compdef _micro micro
"#;

const FISH: &str = r#"# micro completion for fish: micro completion fish | source
complete -c micro -f -a '(micro __complete (commandline -opc)[2..-1] (commandline -ct) 2>/dev/null)'
"#;
