//! `live-config`: a small service that follows its ECS configuration live.
//!
//! It connects with the SDK, prints the configuration resolved for its context
//! (pretty JSON with the feed position) at start and again on every change,
//! until Ctrl-C. Configured from the environment:
//!
//! | variable | default |
//! | --- | --- |
//! | `ECS_NATS_URL` | `nats://127.0.0.1:4222` |
//! | `ECS_NAMESPACE` | `checkout` |
//! | `ECS_ENV`, `ECS_SERVICE`, `ECS_TENANT`, `ECS_EDITION` | unset (the context's dimensions) |
//! | `ECS_CACHE` | `.ecs/live-config-cache.json` |
//!
//! With both `ECS_ENV` and `ECS_SERVICE` set, it also sends drift reports as
//! that service (`GET /v1/drift` then lists it), and its last one at Ctrl-C.
//!
//! ```sh
//! ECS_TENANT=acme ECS_ENV=prod cargo run -p ecs-example-live-config
//! ```

// Printing the configuration to stdout is this example's purpose.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

use anyhow::Context as _;
use ecs_client::{Client, ClientSettings, Config, Context};
use tracing_subscriber::EnvFilter;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// The context from `ECS_ENV`, `ECS_SERVICE`, `ECS_TENANT` and `ECS_EDITION`.
fn context_from_env() -> anyhow::Result<Context> {
    let values: Vec<(&str, String)> = [
        ("env", "ECS_ENV"),
        ("service", "ECS_SERVICE"),
        ("tenant", "ECS_TENANT"),
        ("edition", "ECS_EDITION"),
    ]
    .into_iter()
    .filter_map(|(dimension, var)| Some((dimension, std::env::var(var).ok()?)))
    .filter(|(_, value)| !value.is_empty())
    .collect();
    let pairs = values.iter().map(|(d, v)| (*d, v.as_str()));
    Ok(Context::from_pairs(pairs)?)
}

fn print(namespace: &str, config: &Config) -> anyhow::Result<()> {
    let document = serde_json::json!({
        "namespace": namespace,
        "position": config.position,
        "values": config.values,
    });
    println!("{}", serde_json::to_string_pretty(&document)?);
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    // Logs go to stderr (stdout carries the configuration); RUST_LOG overrides.
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("live-config: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let nats_url = env_or("ECS_NATS_URL", "nats://127.0.0.1:4222");
    let namespace = env_or("ECS_NAMESPACE", "checkout");
    let context = context_from_env().context("invalid context")?;
    let mut settings = ClientSettings::new(&nats_url, [&namespace])
        .context("invalid ECS_NAMESPACE")?
        .with_cache(env_or("ECS_CACHE", ".ecs/live-config-cache.json"));
    if let (Some(env), Some(service)) = (&context.env, &context.service) {
        settings = settings.reporting_as(service.as_str(), env.as_str())?;
    }

    let client = Client::connect(settings).await?;
    let mut changes = client.watch(&namespace, &context)?;
    tracing::info!(%namespace, origin = ?client.origin(), "following the configuration; Ctrl-C to stop");
    print(&namespace, &changes.borrow_and_update())?;

    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            changed = changes.changed() => {
                if changed.is_err() {
                    break; // the client stopped
                }
                let config = changes.borrow_and_update().clone();
                print(&namespace, &config)?;
            }
        }
    }
    client.shutdown().await;
    Ok(())
}
