//! Reading and writing layers: get, set, patch, unset, resolve, history,
//! rollback, and listing namespaces and tenants.

use std::path::PathBuf;

use clap::Args;
use reqwest::Method;
use serde_json::{Value, json};

use crate::connection::{Api, Send, segment};
use crate::exit::{CliError, CliResult};
use crate::files::read_document;
use crate::output::{Printer, cell};
use crate::scope::Scope;
use crate::values::{leaves, parse_value, set_path};

/// The layer's path.
pub fn layer_path(ns: &str, tail: &str) -> String {
    format!("/v1/namespaces/{}/layer{tail}", segment(ns))
}

/// A read of the past: `--at TIME` or `--position N`.
#[derive(Debug, Clone, Args)]
pub struct Past {
    /// Read as of this time (RFC 3339).
    #[arg(long, conflicts_with = "position")]
    pub at: Option<String>,
    /// Read as of this global position.
    #[arg(long)]
    pub position: Option<u64>,
}

impl Past {
    fn extend(&self, query: &mut Vec<(String, String)>) {
        if let Some(at) = &self.at {
            query.push(("at".into(), at.clone()));
        }
        if let Some(position) = self.position {
            query.push(("position".into(), position.to_string()));
        }
    }
}

/// A write's message and precondition.
#[derive(Debug, Clone, Args)]
pub struct WriteOptions {
    /// Why: recorded in history and the audit log.
    #[arg(short, long, default_value = "")]
    pub message: String,
    /// Write only if the layer is at this revision (0: only if it does not exist).
    #[arg(long)]
    pub if_match: Option<u64>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ecs get checkout --scope env=prod,tenant=acme\n  ecs get checkout --scope env=prod --position 42 -o json"
)]
pub struct GetArgs {
    pub namespace: String,
    /// The layer's scope: env=…,service=…,tenant=…,edition=… (global when absent).
    #[arg(long, default_value = "global")]
    pub scope: Scope,
    #[command(flatten)]
    pub past: Past,
}

pub async fn get(api: &Api, out: &mut Printer, args: GetArgs) -> CliResult<()> {
    let mut query = args.scope.query();
    args.past.extend(&mut query);
    let layer = api.get(&layer_path(&args.namespace, ""), &query).await?;
    out.emit(&layer, |out| {
        out.note(format!(
            "# {} at {} revision {} (position {})",
            args.namespace,
            args.scope,
            cell(&layer["revision"]),
            cell(&layer["position"])
        ));
        out.document(&layer["values"]);
        if let Some(locked) = layer["locked"].as_array().filter(|l| !l.is_empty()) {
            let locked: Vec<String> = locked.iter().map(cell).collect();
            out.note(format!("# locked: {}", locked.join(", ")));
        }
    })
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ecs set checkout max_items=250 features.express=true currency=USD --scope env=prod -m 'bigger carts'\n  ecs set checkout /payment/provider='\"adyen\"' --scope tenant=acme --if-match 3"
)]
pub struct SetArgs {
    pub namespace: String,
    /// KEY=VALUE: a dotted path or JSON pointer; the value is JSON when it parses, else a string.
    #[arg(required = true)]
    pub assignments: Vec<String>,
    #[arg(long, default_value = "global")]
    pub scope: Scope,
    #[command(flatten)]
    pub write: WriteOptions,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ecs patch checkout -f patch.yaml --scope env=prod -m 'from review'\n  (a null value deletes the key from the layer: RFC 7386)"
)]
pub struct PatchArgs {
    pub namespace: String,
    /// A JSON or YAML merge patch of the layer's values (`-`: standard input).
    #[arg(short, long)]
    pub file: PathBuf,
    #[arg(long, default_value = "global")]
    pub scope: Scope,
    #[command(flatten)]
    pub write: WriteOptions,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  ecs unset checkout features.express --scope env=prod")]
pub struct UnsetArgs {
    pub namespace: String,
    /// Keys to remove from the layer (dotted paths or JSON pointers).
    #[arg(required = true)]
    pub keys: Vec<String>,
    #[arg(long, default_value = "global")]
    pub scope: Scope,
    #[command(flatten)]
    pub write: WriteOptions,
}

/// Sends a merge patch to a layer and prints the write result.
async fn send_patch(
    api: &Api,
    out: &mut Printer,
    ns: &str,
    scope: &Scope,
    values: Value,
    write: &WriteOptions,
) -> CliResult<()> {
    let body = json!({"values": values, "message": write.message});
    let reply = api
        .send(
            Method::PATCH,
            &layer_path(ns, ""),
            Send {
                query: &scope.query(),
                body: Some(&body),
                if_match: write.if_match,
            },
        )
        .await?;
    written(out, &format!("{ns} at {scope}"), &reply.body, reply.status)
}

/// Prints a write's answer: revision and position, or the change request it opened.
pub fn written(out: &mut Printer, what: &str, body: &Value, status: u16) -> CliResult<()> {
    out.emit(body, |out| {
        if status == 202 || body.get("change_request").is_some() {
            out.line(format!(
                "{what}: approval required, change request {} opened",
                cell(
                    body.get("change_request")
                        .or(body.get("id"))
                        .unwrap_or(&Value::Null)
                )
            ));
        } else if body["duplicate"] == json!(true) {
            out.line(format!(
                "{what}: already applied, revision {}",
                cell(&body["revision"])
            ));
        } else {
            out.line(format!(
                "{what}: revision {} (position {})",
                cell(&body["revision"]),
                cell(&body["position"])
            ));
        }
    })
}

pub async fn set(api: &Api, out: &mut Printer, args: SetArgs) -> CliResult<()> {
    let mut values = json!({});
    for assignment in &args.assignments {
        let (key, value) = assignment
            .split_once('=')
            .ok_or_else(|| CliError::usage(format!("`{assignment}` is not KEY=VALUE")))?;
        set_path(&mut values, key, parse_value(value)).map_err(CliError::usage)?;
    }
    send_patch(api, out, &args.namespace, &args.scope, values, &args.write).await
}

pub async fn patch(api: &Api, out: &mut Printer, args: PatchArgs) -> CliResult<()> {
    let values = read_document(&args.file)?;
    if !values.is_object() {
        return Err(CliError::usage(format!(
            "{}: a merge patch is an object of keys",
            args.file.display()
        )));
    }
    send_patch(api, out, &args.namespace, &args.scope, values, &args.write).await
}

pub async fn unset(api: &Api, out: &mut Printer, args: UnsetArgs) -> CliResult<()> {
    let mut values = json!({});
    for key in &args.keys {
        set_path(&mut values, key, Value::Null).map_err(CliError::usage)?;
    }
    send_patch(api, out, &args.namespace, &args.scope, values, &args.write).await
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ecs resolve checkout --context env=prod,tenant=acme --explain\n  ecs resolve checkout --context env=prod,tenant=acme --at 2026-11-28T10:00:00Z -o json"
)]
pub struct ResolveArgs {
    pub namespace: String,
    /// The reader's context: env=…,service=…,tenant=…,edition=….
    #[arg(long, default_value = "global")]
    pub context: Scope,
    /// Show where every value comes from.
    #[arg(long)]
    pub explain: bool,
    #[command(flatten)]
    pub past: Past,
}

pub async fn resolve(api: &Api, out: &mut Printer, args: ResolveArgs) -> CliResult<()> {
    let mut query = args.context.query();
    if args.explain {
        query.push(("explain".into(), "true".into()));
    }
    args.past.extend(&mut query);
    let path = format!("/v1/namespaces/{}/resolved", segment(&args.namespace));
    let resolved = api.get(&path, &query).await?;
    out.emit(&resolved, |out| {
        if !args.explain {
            out.document(&resolved["values"]);
            return;
        }
        let rows = leaves(&resolved["values"])
            .into_iter()
            .map(|(pointer, value)| {
                let source = &resolved["sources"][&pointer];
                let origin = match source["origin"].as_str() {
                    Some("layer") => format!(
                        "{} r{}",
                        Scope::from_json(&source["scope"]).unwrap_or_default(),
                        cell(&source["revision"])
                    ),
                    Some(other) => other.to_owned(),
                    None => String::new(),
                };
                vec![pointer, cell(&value), origin]
            })
            .collect();
        out.table(&["key", "value", "from"], rows);
    })
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  ecs history checkout --scope env=prod,tenant=acme")]
pub struct HistoryArgs {
    pub namespace: String,
    #[arg(long, default_value = "global")]
    pub scope: Scope,
}

pub async fn history(api: &Api, out: &mut Printer, args: HistoryArgs) -> CliResult<()> {
    let history = api
        .get(
            &layer_path(&args.namespace, "/history"),
            &args.scope.query(),
        )
        .await?;
    out.emit(&history, |out| {
        let rows = history["revisions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                vec![
                    cell(&r["revision"]),
                    cell(&r["position"]),
                    cell(&r["at"]),
                    cell(&r["actor"]),
                    cell(&r["message"]),
                    r["values"].to_string(),
                ]
            })
            .collect();
        out.table(
            &["revision", "position", "at", "actor", "message", "values"],
            rows,
        );
    })
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ecs rollback checkout --scope env=prod --revision 3 -m 'back to the reviewed values'"
)]
pub struct RollbackArgs {
    pub namespace: String,
    #[arg(long, default_value = "global")]
    pub scope: Scope,
    /// The revision whose values and locks to restore.
    #[arg(long)]
    pub revision: u64,
    #[command(flatten)]
    pub write: WriteOptions,
}

pub async fn rollback(api: &Api, out: &mut Printer, args: RollbackArgs) -> CliResult<()> {
    let body = json!({"revision": args.revision, "message": args.write.message});
    let reply = api
        .send(
            Method::POST,
            &layer_path(&args.namespace, "/rollback"),
            Send {
                query: &args.scope.query(),
                body: Some(&body),
                if_match: args.write.if_match,
            },
        )
        .await?;
    written(
        out,
        &format!("{} at {}", args.namespace, args.scope),
        &reply.body,
        reply.status,
    )
}

pub async fn namespaces(api: &Api, out: &mut Printer) -> CliResult<()> {
    let list = api.get("/v1/namespaces", &[]).await?;
    out.emit(&list, |out| {
        let rows = list["namespaces"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| {
                vec![
                    cell(&n["name"]),
                    cell(&n["revision"]),
                    if n["schema"].is_null() { "no" } else { "yes" }.to_owned(),
                    if n.get("approval").is_some_and(|a| !a.is_null()) {
                        "yes"
                    } else {
                        "no"
                    }
                    .to_owned(),
                    cell(&n["description"]),
                ]
            })
            .collect();
        out.table(
            &["namespace", "revision", "schema", "approval", "description"],
            rows,
        );
    })
}

pub async fn tenants(api: &Api, out: &mut Printer) -> CliResult<()> {
    let list = api.get("/v1/tenants", &[]).await?;
    out.emit(&list, |out| {
        let rows = list["tenants"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                vec![
                    cell(&t["id"]),
                    cell(&t["name"]),
                    cell(&t["edition"]),
                    cell(&t["revision"]),
                ]
            })
            .collect();
        out.table(&["tenant", "name", "edition", "revision"], rows);
    })
}
