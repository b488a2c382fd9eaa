//! Masking sensitive values on every read path that returns configuration
//! values: layers, history, change requests (list, one, diff), the audit log
//! and its export, tenant exports and the change feed (and schemas, whose
//! `default`s and examples are values too).
//!
//! A route builds one [`Masker`] for its principal and the kind of read
//! ([`Reading`]) and passes every value it returns through it; the masker
//! knows where each kind of record keeps values (a layer row's `values`, a
//! proposed change's `values` or `patch`, an audit entry's before and after),
//! so no route decides that on its own. Which values are sensitive comes from
//! each namespace's current schema, read once per masker.

use std::collections::{BTreeMap, HashMap};

use ecs_domain::audit::{AuditRecord, AuditValues};
use ecs_domain::change_request::ProposedChange;
use ecs_domain::feed::{FeedItem, FeedMessage};
use ecs_domain::{NamespaceName, Reading, Role, Sensitivity, mask_schema_for};
use ecs_projections::ReadModel;
use ecs_projections::change_requests::ChangeRequestRow;
use serde_json::{Map, Value};

use ecs_domain::secrets::MASK;

/// Masks the values a principal may not read, for one request (or one
/// stream of them).
pub struct Masker {
    read: ReadModel,
    role: Role,
    reading: Reading,
    /// What each namespace's current schema marks, by namespace name.
    schemas: HashMap<String, Sensitivity>,
}

impl Masker {
    pub fn new(read: &ReadModel, role: &Role, reading: Reading) -> Masker {
        Masker {
            read: read.clone(),
            role: role.clone(),
            reading,
            schemas: HashMap::new(),
        }
    }

    /// Whether this principal reads everything unmasked here.
    pub fn reveals(&self) -> bool {
        self.reading.reveals_to(&self.role)
    }

    /// What the namespace's current schema marks sensitive (nothing for a
    /// namespace without a schema, or one that no longer exists).
    async fn sensitivity(&mut self, namespace: &str) -> sqlx::Result<&Sensitivity> {
        if !self.schemas.contains_key(namespace) {
            let schema = match NamespaceName::parse(namespace.to_owned()) {
                Ok(name) => self
                    .read
                    .namespace(&name)
                    .await?
                    .and_then(|n| n.state.schema),
                Err(_) => None,
            };
            self.schemas
                .insert(namespace.to_owned(), Sensitivity::of(schema.as_ref()));
        }
        Ok(&self.schemas[namespace])
    }

    /// Masks a document of the namespace's values (a layer's, a revision's, a
    /// resolved document).
    pub async fn values(&mut self, namespace: &str, values: &mut Value) -> sqlx::Result<()> {
        if !self.reveals() {
            self.sensitivity(namespace).await?.mask(values);
        }
        Ok(())
    }

    /// Masks the data a namespace schema holds (`default`s, examples) where
    /// the schema marks it sensitive.
    pub fn schema(&self, schema: &mut Value) {
        mask_schema_for(&self.role, self.reading, schema);
    }

    /// Masks the values of a proposed change: replaced values or a patch.
    pub async fn change(
        &mut self,
        namespace: &str,
        change: &mut ProposedChange,
    ) -> sqlx::Result<()> {
        match change {
            ProposedChange::Replace { values, .. } | ProposedChange::Patch { patch: values } => {
                self.values(namespace, values).await
            }
            ProposedChange::Clear | ProposedChange::RollBack { .. } => Ok(()),
        }
    }

    /// Masks a proposed change as stored in JSON (an audit entry's or an
    /// export row's `change`): its `values` or `patch` member.
    async fn change_json(&mut self, namespace: &str, change: &mut Value) -> sqlx::Result<()> {
        for member in ["values", "patch"] {
            if let Some(values) = change.get_mut(member) {
                self.values(namespace, values).await?;
            }
        }
        Ok(())
    }

    pub async fn change_request(&mut self, request: &mut ChangeRequestRow) -> sqlx::Result<()> {
        let namespace = request.namespace.to_string();
        self.change(&namespace, &mut request.change).await
    }

    /// Masks the entries of a diff between two resolved documents (per JSON
    /// pointer, `{"before", "after"}`) whose pointer is sensitive in either.
    pub async fn diff(
        &mut self,
        namespace: &str,
        before: &Value,
        after: &Value,
        diff: &mut BTreeMap<String, Value>,
    ) -> sqlx::Result<()> {
        if self.reveals() {
            return Ok(());
        }
        let sensitivity = self.sensitivity(namespace).await?;
        for (pointer, entry) in diff.iter_mut() {
            if (sensitivity.covers(before, pointer) || sensitivity.covers(after, pointer))
                && let Value::Object(entry) = entry
            {
                for value in entry.values_mut() {
                    *value = Value::String(MASK.to_owned());
                }
            }
        }
        Ok(())
    }

    /// Masks an audit entry's before and after, by what its action records.
    async fn audit_values(
        &mut self,
        action: &str,
        namespace: Option<&str>,
        sides: [Option<&mut Value>; 2],
    ) -> sqlx::Result<()> {
        let Some(namespace) = namespace else {
            return Ok(());
        };
        for side in sides.into_iter().flatten() {
            match AuditValues::of(action) {
                AuditValues::Layer => self.values(namespace, side).await?,
                AuditValues::ChangeRequest => {
                    if let Some(change) = side.get_mut("change") {
                        self.change_json(namespace, change).await?;
                    }
                }
                AuditValues::Namespace => {
                    if let Some(schema) = side.get_mut("schema") {
                        self.schema(schema);
                    }
                }
                AuditValues::None => {}
            }
        }
        Ok(())
    }

    pub async fn audit(&mut self, record: &mut AuditRecord) -> sqlx::Result<()> {
        let namespace = record.namespace.clone();
        self.audit_values(
            &record.action,
            namespace.as_deref(),
            [record.before.as_mut(), record.after.as_mut()],
        )
        .await
    }

    /// Masks a layer's values, or a namespace's schema, in a feed message.
    pub async fn feed(&mut self, message: &mut FeedMessage) -> sqlx::Result<()> {
        match &mut message.item {
            FeedItem::Layer {
                namespace, values, ..
            } => {
                let namespace = namespace.to_string();
                self.values(&namespace, values).await?;
            }
            FeedItem::Namespace {
                schema: Some(schema),
                ..
            } => self.schema(schema),
            _ => {}
        }
        Ok(())
    }

    /// Masks a tenant export (`ReadModel::tenant_export` and its audit
    /// section): layer and history rows' `values`, change requests' `change`,
    /// audit rows' before and after.
    pub async fn export(&mut self, archive: &mut Map<String, Value>) -> sqlx::Result<()> {
        if self.reveals() {
            return Ok(());
        }
        for (section, rows) in archive.iter_mut() {
            let Value::Array(rows) = rows else { continue };
            for row in rows {
                let Value::Object(row) = row else { continue };
                let namespace = row
                    .get("namespace")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let Some(namespace) = namespace else { continue };
                match section.as_str() {
                    "layers" | "layer_history" => {
                        if let Some(values) = row.get_mut("values") {
                            self.values(&namespace, values).await?;
                        }
                    }
                    "change_requests" => {
                        if let Some(change) = row.get_mut("change") {
                            self.change_json(&namespace, change).await?;
                        }
                    }
                    "audit" => {
                        let action = row
                            .get("action")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned();
                        let mut before = row.remove("before");
                        let mut after = row.remove("after");
                        self.audit_values(
                            &action,
                            Some(&namespace),
                            [before.as_mut(), after.as_mut()],
                        )
                        .await?;
                        row.extend(before.map(|b| ("before".to_owned(), b)));
                        row.extend(after.map(|a| ("after".to_owned(), a)));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}
