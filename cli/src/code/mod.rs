//! Configuration as code: `ecs export DIR` and `ecs apply DIR`.

pub mod current;
pub mod model;
pub mod plan;

use std::path::PathBuf;

use clap::Args;

use crate::connection::Api;
use crate::exit::{CliError, CliResult, Exit};
use crate::output::Printer;
pub use current::Current;
pub use model::Config;
pub use plan::Plan;

#[derive(Debug, Args)]
#[command(
    after_help = "Writes DIR/tenants.yaml and DIR/namespaces/<namespace>.yaml (schema, description,\napproval policy, layers keyed by scope), sorted so that git diffs stay minimal.\n\nExamples:\n  ecs export config/\n  ecs export config/ --namespace checkout"
)]
pub struct ExportArgs {
    pub dir: PathBuf,
    /// Only these namespaces (repeatable); all when absent.
    #[arg(long = "namespace")]
    pub namespaces: Vec<String>,
}

pub async fn export(api: &Api, out: &mut Printer, args: ExportArgs) -> CliResult<()> {
    let wanted = (!args.namespaces.is_empty()).then_some(args.namespaces.as_slice());
    let current = Current::read(api, wanted).await?;
    for name in &args.namespaces {
        if !current.config.namespaces.contains_key(name) {
            return Err(CliError::Api {
                status: 404,
                problem: serde_json::json!({"code": "namespace-not-found", "detail": format!("namespace {name} does not exist")}),
            });
        }
    }
    let files = current.config.render()?;
    for (relative, text) in &files {
        let path = args.dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| CliError::failure(format!("{}: {e}", parent.display())))?;
        }
        // Unchanged files are left alone, so their modification times say what changed.
        if std::fs::read_to_string(&path).is_ok_and(|existing| &existing == text) {
            continue;
        }
        std::fs::write(&path, text)
            .map_err(|e| CliError::failure(format!("{}: {e}", path.display())))?;
    }
    let listed: Vec<&String> = files.keys().collect();
    out.emit(&listed, |out| {
        for file in &listed {
            out.line(args.dir.join(file).display().to_string());
        }
    })
}

#[derive(Debug, Args)]
#[command(
    after_help = "Without --yes: prints the plan and exits 2 when there are changes, 0 when none.\nWith --yes: applies it, every write conditional on the revision the plan saw (If-Match);\na concurrent change stops it with exit 4.\n\nExamples:\n  ecs apply deploy/demo/\n  ecs apply config/ --yes -m 'release 42'"
)]
pub struct ApplyArgs {
    pub dir: PathBuf,
    /// Apply the plan (otherwise only print it).
    #[arg(long, short)]
    pub yes: bool,
    /// The message recorded with every change.
    #[arg(short, long, default_value = "ecs apply")]
    pub message: String,
}

/// The plan for a directory against the server.
pub async fn plan(api: &Api, dir: &std::path::Path) -> CliResult<Plan> {
    let desired = Config::read(dir)?;
    // Only the declared namespaces' layers matter to the plan.
    let declared: Vec<String> = desired.namespaces.keys().cloned().collect();
    let current = Current::read(api, Some(&declared)).await?;
    Ok(Plan::between(&desired, &current))
}

pub async fn apply(api: &Api, out: &mut Printer, args: ApplyArgs) -> CliResult<Exit> {
    let plan = plan(api, &args.dir).await?;
    if !args.yes {
        out.emit(&plan, |out| plan.print(out, true))?;
        return Ok(if plan.is_empty() {
            Exit::Success
        } else {
            Exit::Changes
        });
    }
    if plan.is_empty() {
        out.emit(&plan, |out| plan.print(out, false))?;
        return Ok(Exit::Success);
    }
    if out.format == crate::output::Format::Table {
        plan.print(out, false);
    }
    let mut log = Printer::new(crate::output::Format::Table, false);
    let result = plan.execute(api, &args.message, &mut log).await;
    match out.format {
        crate::output::Format::Table => out.stdout.push_str(&log.stdout),
        _ => out.emit(&plan, |_| {})?,
    }
    result.map(|()| Exit::Success)
}
