//! `ecs diff` (two scopes, revisions, points in time or resolved contexts)
//! and `ecs promote` (one scope's values onto another, as one change).

use clap::Args;
use reqwest::Method;
use serde_json::{Value, json};

use super::read_write::{layer_path, written};
use crate::connection::{Api, Send, segment};
use crate::exit::{CliError, CliResult, Exit};
use crate::output::Printer;
use crate::scope::Scope;
use crate::values::{Change, diff, merge_patch};

#[derive(Debug, Args)]
#[command(
    after_help = "Exits 0 when both sides are equal, 2 when they differ.\n\nExamples:\n  ecs diff checkout --from env=staging --to env=prod\n  ecs diff checkout --scope env=prod --from-revision 3 --to-revision 5\n  ecs diff checkout --scope env=prod --from-at 2026-11-01T00:00:00Z --to-at 2026-12-01T00:00:00Z\n  ecs diff checkout --resolved --from env=prod,tenant=acme --to env=prod,tenant=globex"
)]
pub struct DiffArgs {
    pub namespace: String,
    /// Both sides' scope (or context), unless --from/--to say otherwise.
    #[arg(long, default_value = "global")]
    pub scope: Scope,
    /// The left side's scope (or context with --resolved).
    #[arg(long)]
    pub from: Option<Scope>,
    /// The right side's scope (or context with --resolved).
    #[arg(long)]
    pub to: Option<Scope>,
    /// Compare resolved documents instead of layers.
    #[arg(long)]
    pub resolved: bool,
    #[arg(long, conflicts_with_all = ["from_at", "from_position", "resolved"])]
    pub from_revision: Option<u64>,
    #[arg(long, conflicts_with_all = ["to_at", "to_position", "resolved"])]
    pub to_revision: Option<u64>,
    #[arg(long, conflicts_with = "from_position")]
    pub from_at: Option<String>,
    #[arg(long, conflicts_with = "to_position")]
    pub to_at: Option<String>,
    #[arg(long)]
    pub from_position: Option<u64>,
    #[arg(long)]
    pub to_position: Option<u64>,
}

/// One side of a comparison.
struct Side<'a> {
    scope: &'a Scope,
    revision: Option<u64>,
    at: Option<&'a String>,
    position: Option<u64>,
}

impl Side<'_> {
    fn describe(&self) -> String {
        let mut text = self.scope.to_string();
        if let Some(r) = self.revision {
            text.push_str(&format!(" revision {r}"));
        }
        if let Some(at) = self.at {
            text.push_str(&format!(" at {at}"));
        }
        if let Some(p) = self.position {
            text.push_str(&format!(" position {p}"));
        }
        text
    }
}

/// A layer's values (`{}` when the layer has none then), or a resolved document.
async fn values(api: &Api, ns: &str, side: &Side<'_>, resolved: bool) -> CliResult<Value> {
    let mut query = side.scope.query();
    if let Some(at) = side.at {
        query.push(("at".into(), at.clone()));
    }
    if let Some(position) = side.position {
        query.push(("position".into(), position.to_string()));
    }
    if resolved {
        let path = format!("/v1/namespaces/{}/resolved", segment(ns));
        return Ok(api.get(&path, &query).await?["values"].clone());
    }
    if let Some(revision) = side.revision {
        let history = api
            .get(&layer_path(ns, "/history"), &side.scope.query())
            .await?;
        return history["revisions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["revision"].as_u64() == Some(revision))
            .map(|r| r["values"].clone())
            .ok_or_else(|| CliError::Api {
                status: 404,
                problem: json!({"code": "revision-not-found", "detail": format!("the layer at {} has no revision {revision}", side.scope)}),
            });
    }
    layer_values(api, ns, &query)
        .await
        .map(|(values, _)| values)
}

/// A layer's values and revision; `({}, 0)` when it does not exist.
pub async fn layer_values(
    api: &Api,
    ns: &str,
    query: &[(String, String)],
) -> CliResult<(Value, u64)> {
    match api.get(&layer_path(ns, ""), query).await {
        Ok(layer) => Ok((
            layer["values"].clone(),
            layer["revision"].as_u64().unwrap_or(0),
        )),
        Err(CliError::Api {
            status: 404,
            problem,
        }) if problem["code"] == "layer-not-found" => Ok((json!({}), 0)),
        Err(error) => Err(error),
    }
}

fn print_changes(out: &mut Printer, header: &str, changes: &[Change]) {
    out.coloured(crate::output::Colour::Bold, header);
    if changes.is_empty() {
        out.line("No differences.");
    }
    for change in changes {
        out.change(change.line());
    }
}

pub async fn diff_command(api: &Api, out: &mut Printer, args: DiffArgs) -> CliResult<Exit> {
    let from_scope = args.from.clone().unwrap_or_else(|| args.scope.clone());
    let to_scope = args.to.clone().unwrap_or_else(|| args.scope.clone());
    let from = Side {
        scope: &from_scope,
        revision: args.from_revision,
        at: args.from_at.as_ref(),
        position: args.from_position,
    };
    let to = Side {
        scope: &to_scope,
        revision: args.to_revision,
        at: args.to_at.as_ref(),
        position: args.to_position,
    };
    let before = values(api, &args.namespace, &from, args.resolved).await?;
    let after = values(api, &args.namespace, &to, args.resolved).await?;
    let changes = diff(&before, &after);
    let answer = json!({"from": from.describe(), "to": to.describe(), "changes": changes});
    out.emit(&answer, |out| {
        print_changes(
            out,
            &format!("--- {}\n+++ {}", from.describe(), to.describe()),
            &changes,
        );
    })?;
    Ok(if changes.is_empty() {
        Exit::Success
    } else {
        Exit::Changes
    })
}

#[derive(Debug, Args)]
#[command(
    after_help = "Copies the keys the source layer sets onto the target layer (keys only the target\nhas are kept) as one audited change, conditional on the target's revision.\nWithout --yes: prints the diff and exits 2 when there is something to promote.\n\nExamples:\n  ecs promote checkout --from env=staging --to env=prod\n  ecs promote checkout --from env=staging --to env=prod --yes -m 'release 42'"
)]
pub struct PromoteArgs {
    pub namespace: String,
    #[arg(long)]
    pub from: Scope,
    #[arg(long)]
    pub to: Scope,
    /// Apply the change (otherwise only show it).
    #[arg(long, short)]
    pub yes: bool,
    #[arg(short, long)]
    pub message: Option<String>,
}

/// `base` with `overlay` merged in (objects recursively, `overlay` wins).
fn overlay(base: &Value, overlay_value: &Value) -> Value {
    match (base, overlay_value) {
        (Value::Object(b), Value::Object(o)) => {
            let mut merged = b.clone();
            for (key, value) in o {
                let next = match merged.get(key) {
                    Some(existing) => overlay(existing, value),
                    None => value.clone(),
                };
                merged.insert(key.clone(), next);
            }
            Value::Object(merged)
        }
        (_, other) => other.clone(),
    }
}

pub async fn promote(api: &Api, out: &mut Printer, args: PromoteArgs) -> CliResult<Exit> {
    let (source, _) = layer_values(api, &args.namespace, &args.from.query()).await?;
    let (target, revision) = layer_values(api, &args.namespace, &args.to.query()).await?;
    let promoted = overlay(&target, &source);
    let changes = diff(&target, &promoted);
    let header = format!("promote {} {} -> {}", args.namespace, args.from, args.to);
    if changes.is_empty() || !args.yes {
        let answer =
            json!({"from": args.from.to_json(), "to": args.to.to_json(), "changes": changes});
        out.emit(&answer, |out| print_changes(out, &header, &changes))?;
        return Ok(if changes.is_empty() {
            Exit::Success
        } else {
            Exit::Changes
        });
    }
    if out.format == crate::output::Format::Table {
        print_changes(out, &header, &changes);
    }
    let message = args
        .message
        .unwrap_or_else(|| format!("promote from {}", args.from));
    let body = json!({"values": merge_patch(&target, &promoted), "message": message});
    let reply = api
        .send(
            Method::PATCH,
            &layer_path(&args.namespace, ""),
            Send {
                query: &args.to.query(),
                body: Some(&body),
                if_match: Some(revision),
            },
        )
        .await?;
    written(
        out,
        &format!("{} at {}", args.namespace, args.to),
        &reply.body,
        reply.status,
    )?;
    Ok(Exit::Success)
}
