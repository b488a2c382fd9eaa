//! `ecs admin`: projection status and rebuild.

use std::time::Duration;

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use reqwest::Method;
use serde_json::{Value, json};

use crate::connection::{Api, Send};
use crate::exit::{CliError, CliResult, Exit};
use crate::output::{Printer, cell};

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Positions, lag and readiness (exit 7 when not ready).
    Status,
    /// Drop every projection and replay the stream, with progress.
    Rebuild {
        /// Return at once instead of waiting for the rebuild to finish.
        #[arg(long)]
        no_wait: bool,
    },
}

async fn readiness(api: &Api) -> CliResult<Value> {
    let response = api
        .request(Method::GET, "/readyz")
        .send()
        .await
        .map_err(|e| CliError::Unavailable(format!("the server is unreachable: {e}")))?;
    response
        .json()
        .await
        .map_err(|e| CliError::Unavailable(format!("/readyz: {e}")))
}

pub async fn admin(api: &Api, out: &mut Printer, command: AdminCommand) -> CliResult<Exit> {
    match command {
        AdminCommand::Status => {
            let projections = api.get("/v1/admin/projections", &[]).await?;
            let ready = readiness(api).await?;
            let applied = projections["applied"].as_u64().unwrap_or(0);
            let target = projections["target"].as_u64().unwrap_or(0);
            let answer = json!({"projections": projections, "readiness": ready, "lag": target.saturating_sub(applied)});
            out.emit(&answer, |out| {
                out.table(
                    &[
                        "applied",
                        "target",
                        "lag",
                        "caught up",
                        "rebuilding",
                        "ready",
                        "nats",
                        "postgres",
                    ],
                    vec![vec![
                        applied.to_string(),
                        target.to_string(),
                        target.saturating_sub(applied).to_string(),
                        cell(&projections["caught_up"]),
                        cell(&projections["rebuilding"]),
                        cell(&ready["ready"]),
                        cell(&ready["nats"]),
                        cell(&ready["postgres"]),
                    ]],
                );
            })?;
            Ok(if ready["ready"] == json!(true) {
                Exit::Success
            } else {
                Exit::Unavailable
            })
        }
        AdminCommand::Rebuild { no_wait } => {
            let reply = api
                .send(
                    Method::POST,
                    "/v1/admin/projections/rebuild",
                    Send::default(),
                )
                .await?;
            let target = reply.body["target_position"].as_u64().unwrap_or(0);
            if no_wait {
                out.emit(&reply.body, |out| {
                    out.line(format!("rebuild started, replaying to position {target}"))
                })?;
                return Ok(Exit::Success);
            }
            let progress =
                ProgressBar::with_draw_target(Some(target), ProgressDrawTarget::stderr());
            if let Ok(style) =
                ProgressStyle::with_template("{bar:40} {pos}/{len} messages, {per_sec}, {eta} left")
            {
                progress.set_style(style);
            }
            let status = loop {
                let status = api.get("/v1/admin/projections", &[]).await?;
                progress.set_position(status["applied"].as_u64().unwrap_or(0).min(target));
                if status["rebuilding"] == json!(false) && status["caught_up"] == json!(true) {
                    break status;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            progress.finish_and_clear();
            out.emit(&status, |out| {
                out.line(format!(
                    "rebuilt: projections at position {}",
                    cell(&status["applied"])
                ));
            })?;
            Ok(Exit::Success)
        }
    }
}
