//! `ecs`: the ECS server.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ecs_api::nats_credential::{Credential, Holder};
use ecs_api::secret::Redactor;
use ecs_api::telemetry::{LogFormat, Telemetry, Traces};
use ecs_api::{Application, Settings, settings::SETTINGS_HELP};
use ecs_domain::{ServiceName, TenantId};

/// mimalloc: the server allocates small, short-lived buffers on every request
/// (headers, JSON values, responses), where it is markedly faster than the
/// system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "ecs",
    version,
    about = "ECS: configuration as a service for multi-tenant SaaS"
)]
struct Cli {
    #[command(flatten)]
    client: ecs_cli::Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: HTTP API v1 and projections.
    #[command(after_long_help = SETTINGS_HELP, after_help = SETTINGS_HELP)]
    Serve {
        /// A TOML settings file; environment variables override it.
        #[arg(long, env = "ECS_CONFIG")]
        config: Option<PathBuf>,
    },
    /// The client subcommands (get, set, apply, …), talking to a server's HTTP API.
    #[command(flatten)]
    Client(Box<ecs_cli::Command>),
    /// Issue an nkey for a locked-down NATS (deploy/nats-auth.conf): prints its
    /// seed, for its holder only, and the users entry granting its permissions.
    NatsCredential {
        /// A feed reader of this tenant only (repeat for several); without
        /// one, a reader of every tenant.
        #[arg(long)]
        tenant: Vec<String>,
        /// The service that will hold it (recorded in the entry's comment).
        #[arg(long)]
        service: Option<String>,
        /// The ECS server's own credential (every subject) instead of a reader's.
        #[arg(long, conflicts_with_all = ["tenant", "service"])]
        server: bool,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli: Cli = ecs_cli::parse();
    match cli.command {
        Command::Client(command) => std::process::exit(ecs_cli::main(cli.client, *command).await),
        Command::Serve { config } => {
            // Kept to the end: dropping it exports the last spans.
            let _telemetry = match Telemetry::install(LogFormat::from_env(), Traces::from_env()) {
                Ok(telemetry) => telemetry,
                Err(error) => return fail(&error.context("cannot start telemetry"), None),
            };
            let settings = match Settings::load(config.as_deref()) {
                Ok(settings) => settings,
                Err(error) => {
                    return fail(&anyhow::Error::new(error).context("invalid settings"), None);
                }
            };
            // Every message printed from here on passes the redactor: errors
            // of the libraries we connect with may quote a URL or a secret.
            let redactor = settings.redactor();
            match serve(settings).await {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(error) => fail(&error, Some(&redactor)),
            }
        }
        Command::NatsCredential {
            tenant,
            service,
            server,
        } => match nats_credential(tenant, service, server) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(error) => fail(&error, None),
        },
    }
}

/// Issues an nkey credential and prints its seed and its users entry.
fn nats_credential(
    tenant: Vec<String>,
    service: Option<String>,
    server: bool,
) -> anyhow::Result<()> {
    let holder = if server {
        Holder::Server
    } else {
        Holder::FeedReader {
            tenants: tenant
                .iter()
                .map(|t| TenantId::parse(t.as_str()).context("--tenant"))
                .collect::<anyhow::Result<_>>()?,
            service: service
                .map(|s| ServiceName::parse(s).context("--service"))
                .transpose()?,
        }
    };
    let report = Credential::issue(holder)?.report();
    std::io::Write::write_all(&mut std::io::stdout(), report.as_bytes())
        .context("writing the credential")
}

/// Runs the server until SIGTERM or SIGINT has drained it.
async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    let shutdown = app.shutdown_token();
    tokio::spawn(async move {
        let signal = ecs_api::shutdown::signal().await;
        tracing::info!(signal, "shutting down: draining");
        shutdown.cancel();
    });
    app.run_until_stopped().await
}

/// Prints the error chain, without any secret, and answers exit code 1.
fn fail(error: &anyhow::Error, redactor: Option<&Redactor>) -> std::process::ExitCode {
    let text = format!("{error:#}");
    let text = redactor.map_or(text.clone(), |r| r.redact(&text));
    tracing::error!(error = %text, "ecs serve failed");
    // The log may be filtered out; the reason of a failed start must show.
    eprintln!("Error: {text}");
    std::process::ExitCode::FAILURE
}
