//! `ecs`: the ECS server.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ecs_api::nats_credential::{Credential, Holder};
use ecs_api::{Application, Settings, settings::SETTINGS_HELP};
use ecs_domain::{ServiceName, TenantId};
use tracing_subscriber::EnvFilter;

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

fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if std::env::var("ECS_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => {
            init_tracing();
            let settings = Settings::load(config.as_deref()).context("invalid settings")?;
            let app = Application::build(settings).await?;
            let shutdown = app.shutdown_token();
            tokio::spawn(async move {
                let _ = tokio::signal::ctrl_c().await;
                tracing::info!("shutting down");
                shutdown.cancel();
            });
            app.run_until_stopped().await
        }
        Command::NatsCredential {
            tenant,
            service,
            server,
        } => {
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
    }
}
