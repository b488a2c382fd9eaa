//! The plan: what `ecs apply` changes to make the server hold what a
//! directory declares, and its execution with `If-Match` on every write.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use reqwest::Method;
use serde::Serialize;
use serde_json::{Value, json};

use super::current::Current;
use super::model::{Config, LayerSpec, NamespaceSpec, TenantSpec};
use crate::connection::{Api, Send, segment};
use crate::exit::{CliError, CliResult};
use crate::output::Printer;
use crate::scope::Scope;
use crate::values::{Change, diff};

/// Whether an item is new or changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Change,
    /// A layer the directory no longer declares: a new, empty revision.
    Clear,
}

/// One write of the plan, with the revision it expects to find.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Step {
    Tenant {
        tenant: String,
        action: Action,
        spec: TenantSpec,
        expected_revision: u64,
    },
    Namespace {
        namespace: String,
        action: Action,
        /// The fields that change: description, schema, approval.
        fields: Vec<&'static str>,
        spec: NamespaceSpec,
        expected_revision: u64,
    },
    Layer {
        namespace: String,
        scope: Value,
        #[serde(skip)]
        scope_key: Scope,
        action: Action,
        changes: Vec<Change>,
        lock_added: Vec<String>,
        lock_removed: Vec<String>,
        #[serde(skip)]
        spec: LayerSpec,
        expected_revision: u64,
    },
}

/// Everything `apply` would do, in order: tenants, namespaces, then layers
/// from the broadest scope to the narrowest.
#[derive(Debug, Default, Serialize)]
pub struct Plan {
    pub steps: Vec<Step>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The plan turning `current` into `desired`. Only the namespaces the
    /// directory declares are touched; tenants are created or changed, never
    /// removed.
    pub fn between(desired: &Config, current: &Current) -> Plan {
        let mut steps = Vec::new();
        for (tenant, spec) in &desired.tenants {
            let action = match current.config.tenants.get(tenant) {
                None => Action::Create,
                Some(existing) if existing != spec => Action::Change,
                Some(_) => continue,
            };
            steps.push(Step::Tenant {
                tenant: tenant.clone(),
                action,
                spec: spec.clone(),
                expected_revision: current.tenant_revisions.get(tenant).copied().unwrap_or(0),
            });
        }
        for (namespace, spec) in &desired.namespaces {
            let (action, fields) = match current.config.namespaces.get(namespace) {
                None => (Action::Create, Vec::new()),
                Some(existing) => {
                    let mut fields = Vec::new();
                    if existing.description != spec.description {
                        fields.push("description");
                    }
                    if existing.schema != spec.schema {
                        fields.push("schema");
                    }
                    if existing.approval != spec.approval {
                        fields.push("approval");
                    }
                    if fields.is_empty() {
                        continue;
                    }
                    (Action::Change, fields)
                }
            };
            steps.push(Step::Namespace {
                namespace: namespace.clone(),
                action,
                fields,
                spec: spec.clone(),
                expected_revision: current
                    .namespace_revisions
                    .get(namespace)
                    .copied()
                    .unwrap_or(0),
            });
        }
        let mut layers = Vec::new();
        for namespace in desired.namespaces.keys() {
            let empty = Default::default();
            let wanted = desired.layers.get(namespace).unwrap_or(&empty);
            let existing = current.config.layers.get(namespace).unwrap_or(&empty);
            let scopes: std::collections::BTreeSet<&Scope> =
                wanted.keys().chain(existing.keys()).collect();
            for scope in scopes {
                let blank = LayerSpec {
                    values: json!({}),
                    lock: Vec::new(),
                };
                let after = wanted.get(scope).unwrap_or(&blank);
                let before = existing.get(scope).unwrap_or(&blank);
                if after == before {
                    continue;
                }
                let action = if after.is_empty() {
                    Action::Clear
                } else if before.is_empty() {
                    Action::Create
                } else {
                    Action::Change
                };
                let key = (namespace.clone(), scope.clone());
                layers.push(Step::Layer {
                    namespace: namespace.clone(),
                    scope: scope.to_json(),
                    scope_key: scope.clone(),
                    action,
                    changes: diff(&before.values, &after.values),
                    lock_added: after
                        .lock
                        .iter()
                        .filter(|p| !before.lock.contains(p))
                        .cloned()
                        .collect(),
                    lock_removed: before
                        .lock
                        .iter()
                        .filter(|p| !after.lock.contains(p))
                        .cloned()
                        .collect(),
                    spec: after.clone(),
                    expected_revision: current.layer_revisions.get(&key).copied().unwrap_or(0),
                });
            }
        }
        // Broader layers first: a narrower layer's write is validated with them.
        layers.sort_by_key(|step| match step {
            Step::Layer {
                namespace,
                scope_key,
                ..
            } => (namespace.clone(), scope_key.len(), scope_key.clone()),
            _ => unreachable!("only layers are sorted"),
        });
        steps.extend(layers);
        Plan { steps }
    }

    /// The plan for people.
    /// `hint`: end with how to apply it (when it was only planned).
    pub fn print(&self, out: &mut Printer, hint: bool) {
        if self.is_empty() {
            out.line("No changes: the server matches the directory.");
            return;
        }
        for step in &self.steps {
            out.coloured(crate::output::Colour::Bold, step.title());
            if let Step::Layer {
                changes,
                lock_added,
                lock_removed,
                ..
            } = step
            {
                for change in changes {
                    out.change(format!("  {}", change.line()));
                }
                for pointer in lock_added {
                    out.change(format!("  + lock {pointer}"));
                }
                for pointer in lock_removed {
                    out.change(format!("  - lock {pointer}"));
                }
            }
        }
        if hint {
            out.line(format!(
                "{} change(s). Run with --yes to apply them.",
                self.steps.len()
            ));
        }
    }

    /// Applies every step in order; the first refusal stops it (412: someone
    /// changed the item since the plan was made).
    pub async fn execute(&self, api: &Api, message: &str, out: &mut Printer) -> CliResult<()> {
        let progress = ProgressBar::with_draw_target(
            Some(self.steps.len() as u64),
            ProgressDrawTarget::stderr(),
        );
        if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} ({eta} left)") {
            progress.set_style(style);
        }
        for step in &self.steps {
            progress.set_message(step.title());
            let result = step.execute(api, message).await.map_err(|error| match error.status() {
                Some(412) => CliError::Conflict(format!(
                    "{}: changed on the server since the plan was made; nothing after it was applied. Run `ecs apply` again to see the new plan.",
                    step.title()
                )),
                _ => error,
            });
            let reply = match result {
                Ok(reply) => reply,
                Err(error) => {
                    progress.abandon();
                    return Err(error);
                }
            };
            let done = if reply.get("change_request").is_some() {
                format!(
                    "{}: approval required, change request {} opened",
                    step.title(),
                    reply["change_request"]
                )
            } else {
                format!("{}: done, revision {}", step.title(), reply["revision"])
            };
            progress.inc(1);
            out.line(done);
        }
        progress.finish_and_clear();
        out.line(format!("Applied {} change(s).", self.steps.len()));
        Ok(())
    }
}

impl Step {
    pub fn title(&self) -> String {
        let verb = |action: &Action| match action {
            Action::Create => "create",
            Action::Change => "change",
            Action::Clear => "clear",
        };
        match self {
            Step::Tenant {
                tenant,
                action,
                spec,
                ..
            } => {
                format!(
                    "tenant {tenant}: {} (edition {})",
                    verb(action),
                    spec.edition
                )
            }
            Step::Namespace {
                namespace,
                action,
                fields,
                ..
            } if fields.is_empty() => {
                format!("namespace {namespace}: {}", verb(action))
            }
            Step::Namespace {
                namespace,
                action,
                fields,
                ..
            } => {
                format!(
                    "namespace {namespace}: {} {}",
                    verb(action),
                    fields.join(", ")
                )
            }
            Step::Layer {
                namespace,
                scope_key,
                action,
                ..
            } => {
                format!("layer {namespace} {scope_key}: {}", verb(action))
            }
        }
    }

    async fn execute(&self, api: &Api, message: &str) -> CliResult<Value> {
        let (method, path, query, body, expected) = match self {
            Step::Tenant {
                tenant,
                spec,
                expected_revision,
                ..
            } => (
                Method::PUT,
                format!("/v1/tenants/{}", segment(tenant)),
                Vec::new(),
                serde_json::to_value(spec).map_err(|e| CliError::failure(e.to_string()))?,
                *expected_revision,
            ),
            Step::Namespace {
                namespace,
                spec,
                expected_revision,
                ..
            } => (
                Method::PUT,
                format!("/v1/namespaces/{}", segment(namespace)),
                Vec::new(),
                serde_json::to_value(spec).map_err(|e| CliError::failure(e.to_string()))?,
                *expected_revision,
            ),
            Step::Layer {
                namespace,
                scope_key,
                action: Action::Clear,
                expected_revision,
                ..
            } => {
                let mut query = scope_key.query();
                query.push(("message".into(), message.to_owned()));
                (
                    Method::DELETE,
                    format!("/v1/namespaces/{}/layer", segment(namespace)),
                    query,
                    Value::Null,
                    *expected_revision,
                )
            }
            Step::Layer {
                namespace,
                scope_key,
                spec,
                expected_revision,
                ..
            } => (
                Method::PUT,
                format!("/v1/namespaces/{}/layer", segment(namespace)),
                scope_key.query(),
                json!({"values": spec.values, "lock": spec.lock, "message": message}),
                *expected_revision,
            ),
        };
        let body = (!body.is_null()).then_some(&body);
        let reply = api
            .send(
                method,
                &path,
                Send {
                    query: &query,
                    body,
                    if_match: Some(expected),
                },
            )
            .await?;
        Ok(reply.body)
    }
}
