//! `ecs audit`: the audit log, with its filters.

use clap::Args;

use crate::connection::Api;
use crate::exit::CliResult;
use crate::output::{Printer, cell};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ecs audit --namespace checkout --outcome refused\n  ecs audit --tenant acme --since 2026-11-01T00:00:00Z -o json"
)]
pub struct AuditArgs {
    #[arg(long)]
    pub tenant: Option<String>,
    #[arg(long)]
    pub namespace: Option<String>,
    /// admin, token:<id> or jwt:<sub>.
    #[arg(long)]
    pub actor: Option<String>,
    /// An exact action, such as layer.patched.
    #[arg(long)]
    pub action: Option<String>,
    /// accepted or refused.
    #[arg(long)]
    pub outcome: Option<String>,
    /// RFC 3339, inclusive.
    #[arg(long)]
    pub since: Option<String>,
    /// RFC 3339, exclusive.
    #[arg(long)]
    pub until: Option<String>,
    /// 1 to 1000.
    #[arg(long)]
    pub limit: Option<u32>,
    /// The previous page's next_cursor.
    #[arg(long)]
    pub cursor: Option<String>,
}

pub async fn audit(api: &Api, out: &mut Printer, args: AuditArgs) -> CliResult<()> {
    let filters = [
        ("tenant", args.tenant),
        ("namespace", args.namespace),
        ("actor", args.actor),
        ("action", args.action),
        ("outcome", args.outcome),
        ("since", args.since),
        ("until", args.until),
        ("limit", args.limit.map(|l| l.to_string())),
        ("cursor", args.cursor),
    ];
    let query: Vec<(String, String)> = filters
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
        .collect();
    let page = api.get("/v1/audit", &query).await?;
    out.emit(&page, |out| {
        let rows = page["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                vec![
                    cell(&e["at"]),
                    cell(&e["outcome"]),
                    cell(&e["action"]),
                    cell(&e["actor"]),
                    cell(&e["namespace"]),
                    cell(&e["tenant"]),
                    if e["reason"].is_null() {
                        cell(&e["message"])
                    } else {
                        cell(&e["reason"])
                    },
                ]
            })
            .collect();
        out.table(
            &[
                "at",
                "outcome",
                "action",
                "actor",
                "namespace",
                "tenant",
                "message / reason",
            ],
            rows,
        );
        if let Some(cursor) = page["next_cursor"].as_str() {
            out.note(format!("more: --cursor {cursor}"));
        }
    })
}
