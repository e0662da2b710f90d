//! `micro`: the command line of Micro for Rust.
//!
//! Every failure is one line on stderr and a non-zero exit code; nothing panics at a user.

mod bot;
mod cli;
mod commands;
mod complete;
mod config;
mod context;
mod failure;
mod files;
mod pack;
mod tokens;

use clap::Parser;

fn main() {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("micro: internal error: {info}. Please report this.");
    }));
    let args = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Failed to start: {e}");
            std::process::exit(1);
        }
    };
    let code = match runtime.block_on(commands::run(args)) {
        Ok(()) => 0,
        Err(failure) => {
            if !failure.message.is_empty() {
                eprintln!("{}", failure.message);
            }
            failure.code
        }
    };
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    std::process::exit(code);
}
