//! `ecs change-requests`: list, show, approve, reject and withdraw.

use clap::Subcommand;
use reqwest::Method;
use serde_json::json;

use crate::connection::{Api, Send, segment};
use crate::exit::CliResult;
use crate::output::{Printer, cell};

#[derive(Debug, Subcommand)]
pub enum ChangeRequestsCommand {
    /// List change requests.
    List {
        /// open, applying, approved, rejected, withdrawn or failed.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        namespace: Option<String>,
    },
    /// Show a request and its diff.
    Show { id: String },
    /// Approve (a principal other than the requester): the change applies.
    Approve {
        id: String,
        #[arg(short = 'm', long = "reason", default_value = "")]
        reason: String,
    },
    /// Reject a request.
    Reject {
        id: String,
        #[arg(short = 'm', long = "reason", default_value = "")]
        reason: String,
    },
    /// Withdraw your own request.
    Withdraw { id: String },
}

pub async fn change_requests(
    api: &Api,
    out: &mut Printer,
    command: Option<ChangeRequestsCommand>,
) -> CliResult<()> {
    let command = command.unwrap_or(ChangeRequestsCommand::List {
        status: None,
        namespace: None,
    });
    let (id, verb, reason) = match command {
        ChangeRequestsCommand::List { status, namespace } => {
            let query: Vec<(String, String)> = [("status", status), ("namespace", namespace)]
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
                .collect();
            let list = api.get("/v1/change-requests", &query).await?;
            return out.emit(&list, |out| {
                let rows = list["change_requests"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        vec![
                            cell(&r["id"]),
                            cell(&r["status"]),
                            cell(&r["namespace"]),
                            r.get("scope")
                                .map(|s| {
                                    crate::scope::Scope::from_json(s)
                                        .unwrap_or_default()
                                        .to_string()
                                })
                                .unwrap_or_default(),
                            cell(&r["requested_by"]),
                            cell(&r["message"]),
                        ]
                    })
                    .collect();
                out.table(
                    &[
                        "id",
                        "status",
                        "namespace",
                        "scope",
                        "requested by",
                        "message",
                    ],
                    rows,
                );
            });
        }
        ChangeRequestsCommand::Show { id } => {
            let request = api
                .get(&format!("/v1/change-requests/{}", segment(&id)), &[])
                .await?;
            return out.emit(&request, |out| {
                out.line(format!(
                    "change request {} ({})",
                    cell(&request["id"]),
                    cell(&request["status"])
                ));
                let rows = request["diff"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(pointer, d)| {
                        vec![
                            pointer.clone(),
                            d.get("before")
                                .map(cell)
                                .unwrap_or_else(|| "(absent)".into()),
                            d.get("after")
                                .map(cell)
                                .unwrap_or_else(|| "(absent)".into()),
                        ]
                    })
                    .collect();
                out.table(&["key", "before", "after"], rows);
            });
        }
        ChangeRequestsCommand::Approve { id, reason } => (id, "approve", reason),
        ChangeRequestsCommand::Reject { id, reason } => (id, "reject", reason),
        ChangeRequestsCommand::Withdraw { id } => (id, "withdraw", String::new()),
    };
    let body = json!({"reason": reason});
    let reply = api
        .send(
            Method::POST,
            &format!("/v1/change-requests/{}/{verb}", segment(&id)),
            Send {
                body: Some(&body),
                ..Send::default()
            },
        )
        .await?;
    out.emit(&reply.body, |out| {
        out.line(format!(
            "change request {id}: {}",
            cell(reply.body.get("status").unwrap_or(&json!(verb)))
        ));
    })
}
