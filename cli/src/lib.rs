//! `ecs-cli`: the `ecs` command line's subcommands, talking to the HTTP API.
//!
//! The `ecs` binary flattens [`Command`] into its own subcommands; tests run
//! [`run_from`] in-process and check the [`Outcome`] (exit code and output).

pub mod code;
pub mod commands;
pub mod connection;
pub mod exit;
pub mod files;
pub mod import;
pub mod output;
pub mod scope;
pub mod values;

use std::io::Write as _;

use clap::{CommandFactory as _, Parser, Subcommand};
use clap_complete::Shell;

use crate::commands::admin::AdminCommand;
use crate::commands::change_requests::ChangeRequestsCommand;
use crate::commands::tokens::TokensCommand;
use crate::commands::{admin, audit, change_requests, diff, read_write, tokens};
pub use crate::connection::{Api, Connection};
pub use crate::exit::{CliError, Exit};
use crate::output::{Format, Printer};

/// Options every client subcommand takes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Global {
    #[command(flatten)]
    pub connection: Connection,
    /// Output: table (for people), json or yaml (the API's shapes, for scripts).
    #[arg(short, long, value_enum, default_value_t = Format::Table, global = true)]
    pub output: Format,
}

/// The client subcommands of `ecs`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read a layer's values at a scope.
    Get(read_write::GetArgs),
    /// Set keys of a layer (KEY=VALUE...).
    Set(read_write::SetArgs),
    /// Merge a JSON or YAML patch into a layer.
    Patch(read_write::PatchArgs),
    /// Remove keys from a layer.
    Unset(read_write::UnsetArgs),
    /// Resolve the document a context reads, optionally explained or in the past.
    Resolve(read_write::ResolveArgs),
    /// A layer's revisions.
    History(read_write::HistoryArgs),
    /// Restore a layer's earlier revision as a new one.
    Rollback(read_write::RollbackArgs),
    /// List namespaces.
    #[command(
        after_help = "Examples:\n  ecs namespaces\n  ecs namespaces -o json | jq -r '.namespaces[].name'"
    )]
    Namespaces,
    /// List tenants.
    #[command(after_help = "Examples:\n  ecs tenants\n  ecs tenants -o yaml")]
    Tenants,
    /// Compare two scopes, revisions, points in time or resolved contexts.
    Diff(diff::DiffArgs),
    /// Copy one scope's values onto another as one audited change.
    Promote(diff::PromoteArgs),
    /// Write namespaces, tenants and layers as YAML files.
    Export(code::ExportArgs),
    /// Plan (and with --yes apply) a directory written by export.
    Apply(code::ApplyArgs),
    /// Import appsettings.json, .env, .properties, YAML or JSON into a layer.
    Import(import::ImportArgs),
    /// API keys: list (default), issue, revoke.
    #[command(
        alias = "token",
        after_help = "Examples:\n  ecs tokens\n  ecs tokens issue ci --role editor --namespace checkout > ci-token\n  ecs tokens revoke 0192…"
    )]
    Tokens {
        #[command(subcommand)]
        command: Option<TokensCommand>,
    },
    /// The audit log.
    Audit(audit::AuditArgs),
    /// Change requests: list (default), show, approve, reject, withdraw.
    #[command(
        alias = "cr",
        after_help = "Examples:\n  ecs change-requests list --status open\n  ecs change-requests show 9f2c…\n  ecs change-requests approve 9f2c… -m 'reviewed'"
    )]
    ChangeRequests {
        #[command(subcommand)]
        command: Option<ChangeRequestsCommand>,
    },
    /// Operations: projection status and rebuild.
    #[command(after_help = "Examples:\n  ecs admin status\n  ecs admin rebuild")]
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Print shell completions: ecs completions bash|zsh|fish.
    #[command(
        after_help = "Examples:\n  ecs completions bash > /etc/bash_completion.d/ecs\n  ecs completions zsh > \"${fpath[1]}/_ecs\"\n  ecs completions fish > ~/.config/fish/completions/ecs.fish"
    )]
    Completions { shell: Shell },
}

/// The command line of the client alone (the binary adds `serve`).
#[derive(Debug, Parser)]
#[command(name = "ecs", version, about = "ECS command line")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// How a run ended and what it printed.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Parses `P` from the process's arguments; a usage error exits 64 (help and
/// version exit 0), so that 2 keeps meaning "changes" for apply and diff.
pub fn parse<P: Parser>() -> P {
    P::try_parse().unwrap_or_else(|error| {
        let _ = error.print();
        std::process::exit(if error.use_stderr() {
            Exit::Usage.code()
        } else {
            0
        })
    })
}

/// Runs a command line in-process (`args` includes the program name).
pub async fn run_from<I, T>(args: I) -> Outcome
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    match Cli::try_parse_from(args) {
        Ok(cli) => run(cli.global, cli.command, false).await,
        Err(error) => Outcome {
            code: if error.use_stderr() {
                Exit::Usage.code()
            } else {
                0
            },
            stdout: if error.use_stderr() {
                String::new()
            } else {
                error.to_string()
            },
            stderr: if error.use_stderr() {
                error.to_string()
            } else {
                String::new()
            },
        },
    }
}

/// Runs a parsed command; `colour`: whether colours may be used.
pub async fn run(global: Global, command: Command, colour: bool) -> Outcome {
    let mut out = Printer::new(global.output, colour);
    let result = dispatch(&global, command, &mut out).await;
    let code = match result {
        Ok(exit) => exit.code(),
        Err(error) => {
            for line in error.describe() {
                out.note(line);
            }
            error.exit().code()
        }
    };
    Outcome {
        code,
        stdout: out.stdout,
        stderr: out.stderr,
    }
}

/// Runs a command for the binary: prints its output and returns the exit code.
pub async fn main(global: Global, command: Command) -> i32 {
    let outcome = run(global, command, Printer::terminal_colours()).await;
    let _ = std::io::stdout().write_all(outcome.stdout.as_bytes());
    let _ = std::io::stderr().write_all(outcome.stderr.as_bytes());
    outcome.code
}

async fn dispatch(global: &Global, command: Command, out: &mut Printer) -> Result<Exit, CliError> {
    if let Command::Completions { shell } = command {
        let mut buffer = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "ecs", &mut buffer);
        out.stdout.push_str(&String::from_utf8_lossy(&buffer));
        return Ok(Exit::Success);
    }
    let api = global.connection.connect()?;
    let done = Exit::Success;
    match command {
        Command::Get(args) => read_write::get(&api, out, args).await.map(|()| done),
        Command::Set(args) => read_write::set(&api, out, args).await.map(|()| done),
        Command::Patch(args) => read_write::patch(&api, out, args).await.map(|()| done),
        Command::Unset(args) => read_write::unset(&api, out, args).await.map(|()| done),
        Command::Resolve(args) => read_write::resolve(&api, out, args).await.map(|()| done),
        Command::History(args) => read_write::history(&api, out, args).await.map(|()| done),
        Command::Rollback(args) => read_write::rollback(&api, out, args).await.map(|()| done),
        Command::Namespaces => read_write::namespaces(&api, out).await.map(|()| done),
        Command::Tenants => read_write::tenants(&api, out).await.map(|()| done),
        Command::Diff(args) => diff::diff_command(&api, out, args).await,
        Command::Promote(args) => diff::promote(&api, out, args).await,
        Command::Export(args) => code::export(&api, out, args).await.map(|()| done),
        Command::Apply(args) => code::apply(&api, out, args).await,
        Command::Import(args) => import::import(&api, out, args).await.map(|()| done),
        Command::Tokens { command } => tokens::tokens(&api, out, command).await.map(|()| done),
        Command::Audit(args) => audit::audit(&api, out, args).await.map(|()| done),
        Command::ChangeRequests { command } => change_requests::change_requests(&api, out, command)
            .await
            .map(|()| done),
        Command::Admin { command } => admin::admin(&api, out, command).await,
        Command::Completions { .. } => Ok(done),
    }
}
