//! `ecs tokens`: list, issue and revoke API keys.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Map, Value};

use crate::connection::{Api, Send, segment};
use crate::exit::CliResult;
use crate::output::{Printer, cell};

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// List API keys (never their secrets).
    List,
    /// Issue an API key; its secret is printed once.
    #[command(
        after_help = "Examples:\n  ecs tokens issue ci --role editor --namespace checkout\n  ecs tokens issue acme-admin --role tenant-admin --tenant acme -o json"
    )]
    Issue(IssueArgs),
    /// Revoke an API key by id.
    Revoke { id: String },
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    pub name: String,
    /// admin, tenant-admin, editor, viewer, service or auditor.
    #[arg(long)]
    pub role: String,
    #[arg(long)]
    pub tenant: Option<String>,
    /// Namespaces of an editor or viewer (repeatable).
    #[arg(long = "namespace")]
    pub namespaces: Vec<String>,
    #[arg(long)]
    pub env: Option<String>,
    #[arg(long)]
    pub service: Option<String>,
    /// RFC 3339; never expires when absent.
    #[arg(long)]
    pub expires_at: Option<String>,
}

pub async fn tokens(api: &Api, out: &mut Printer, command: Option<TokensCommand>) -> CliResult<()> {
    match command.unwrap_or(TokensCommand::List) {
        TokensCommand::List => {
            let list = api.get("/v1/tokens", &[]).await?;
            out.emit(&list, |out| {
                let rows = list["tokens"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| {
                        vec![
                            cell(&t["id"]),
                            cell(&t["name"]),
                            t.get("role").map(cell).unwrap_or_default(),
                            cell(t.get("revoked_at").unwrap_or(&Value::Null)),
                            cell(t.get("expires_at").unwrap_or(&Value::Null)),
                        ]
                    })
                    .collect();
                out.table(&["id", "name", "role", "revoked", "expires"], rows);
            })
        }
        TokensCommand::Issue(args) => {
            let mut body = Map::new();
            body.insert("name".into(), args.name.into());
            body.insert("role".into(), args.role.into());
            let optional = [
                ("tenant", args.tenant),
                ("env", args.env),
                ("service", args.service),
                ("expires_at", args.expires_at),
            ];
            for (key, value) in optional {
                if let Some(value) = value {
                    body.insert(key.into(), value.into());
                }
            }
            if !args.namespaces.is_empty() {
                body.insert("namespaces".into(), args.namespaces.into());
            }
            let body = Value::Object(body);
            let reply = api
                .send(
                    Method::POST,
                    "/v1/tokens",
                    Send {
                        body: Some(&body),
                        ..Send::default()
                    },
                )
                .await?;
            let issued = reply.body;
            out.emit(&issued, |out| {
                out.note(format!(
                    "issued token {} (store the secret now: it is not shown again)",
                    cell(&issued["id"])
                ));
                out.line(cell(&issued["token"]));
            })
        }
        TokensCommand::Revoke { id } => {
            let reply = api
                .send(
                    Method::DELETE,
                    &format!("/v1/tokens/{}", segment(&id)),
                    Send::default(),
                )
                .await?;
            out.emit(&reply.body, |out| out.line(format!("revoked token {id}")))
        }
    }
}
