//! The audit log's projection: one `audit` row per audit record.
//!
//! Accepted changes come from the events stream: [`record_accepted`] runs
//! inside `apply::apply_messages` (layer changes with their rows, in
//! `LayerRun`), in the projection's transaction, so each change is
//! recorded exactly once and a rebuild replays it identically (the values
//! before a change are read from the tables before the message applies).
//! Refused attempts and rollout plans' lifecycle ([`PlanAction`]) come from
//! the `ECS_AUDIT` stream: [`AuditProjector`] follows it from its own offset
//! (`projection_offsets` row `audit`) and keeps them across rebuilds
//! (docs/adr/0005-audit-log.md, docs/adr/0023).

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig};
use ecs_commands::store::meta as store_meta;
use ecs_commands::{AnyEvents, EventMessage};
use ecs_domain::audit::{AuditRecord, Outcome, PlanAction};
use ecs_domain::change_request::{ChangeRequestEvent, Status};
use ecs_domain::{LayerChange, NamespaceEvent, Scope, TenantEvent, TokenEvent};
use futures::StreamExt;
use serde_json::{Value, json};
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder, Row, Transaction, postgres::PgRow};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::halt::{Halts, ProjectionName, Skip, skip_recorded};
use crate::offsets;
use crate::retry::{Backoff, retry_with_backoff};

/// One audit row about to be written.
pub(crate) struct Entry<'a> {
    pub key: String,
    pub at: OffsetDateTime,
    pub outcome: Outcome,
    pub action: String,
    pub actor: Option<&'a str>,
    pub role: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub correlation_id: Option<&'a str>,
    pub tenant: Option<String>,
    pub namespace: Option<String>,
    pub scope: Option<Scope>,
    pub reason: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub message: Option<String>,
    pub position: Option<u64>,
}

/// The entry of the `index`th event of the accepted message at `position`,
/// before its event-specific fields are filled in.
pub(crate) fn accepted_entry(
    position: u64,
    index: usize,
    message: &EventMessage<Value>,
    action: String,
) -> Entry<'_> {
    let meta = |k: &str| message.metadata.get(k).map(String::as_str);
    Entry {
        key: accepted_key(position, index),
        at: message.at,
        outcome: Outcome::Accepted,
        action,
        actor: Some(message.actor.as_str()),
        role: meta(store_meta::ROLE),
        request_id: meta(store_meta::REQUEST_ID),
        correlation_id: meta(store_meta::CORRELATION_ID),
        tenant: None,
        namespace: None,
        scope: None,
        reason: None,
        before: None,
        after: None,
        message: None,
        position: Some(position),
    }
}

fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Accepted => "accepted",
        Outcome::Refused => "refused",
    }
}

async fn insert(tx: &mut Transaction<'_, Postgres>, entry: Entry<'_>) -> sqlx::Result<()> {
    insert_all(tx, std::slice::from_ref(&entry)).await
}

/// Writes many entries in one statement (skipping keys already there).
pub(crate) async fn insert_all(
    tx: &mut Transaction<'_, Postgres>,
    entries: &[Entry<'_>],
) -> sqlx::Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    fn column<'e, T>(entries: &'e [Entry<'_>], f: impl Fn(&'e Entry<'_>) -> T) -> Vec<T> {
        entries.iter().map(f).collect()
    }
    sqlx::query(
        "INSERT INTO audit (key, at, outcome, action, actor, role, request_id, correlation_id, tenant,
            namespace, scope, reason, before, after, message, position)
         SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],
            $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::jsonb[], $12::text[],
            $13::jsonb[], $14::jsonb[], $15::text[], $16::bigint[])
         ON CONFLICT (key) DO NOTHING",
    )
    .bind(column(entries, |e| e.key.as_str()))
    .bind(column(entries, |e| e.at))
    .bind(column(entries, |e| outcome_name(e.outcome)))
    .bind(column(entries, |e| e.action.as_str()))
    .bind(column(entries, |e| e.actor))
    .bind(column(entries, |e| e.role))
    .bind(column(entries, |e| e.request_id))
    .bind(column(entries, |e| e.correlation_id))
    .bind(column(entries, |e| e.tenant.as_deref()))
    .bind(column(entries, |e| e.namespace.as_deref()))
    .bind(column(entries, |e| e.scope.as_ref().map(Json)))
    .bind(column(entries, |e| e.reason.as_deref()))
    .bind(column(entries, |e| e.before.as_ref().map(Json)))
    .bind(column(entries, |e| e.after.as_ref().map(Json)))
    .bind(column(entries, |e| e.message.as_deref()))
    .bind(column(entries, |e| e.position.map(|p| p as i64)))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The entries that are not a projection of the events stream, kept when the
/// projections are rebuilt: refused attempts, rollout plans' lifecycle and
/// operators' skips.
pub(crate) const KEPT_ACROSS_REBUILDS: &str =
    "outcome = 'refused' OR key LIKE 'rollout:%' OR key LIKE 'skip:%'";

/// Records an operator's skip of a message a projection could not read
/// (`projection_skips`, which the projections honour) and its audit entry
/// (kept across rebuilds, as refused attempts are), in one transaction.
pub async fn record_skip(pool: &sqlx::PgPool, skip: &Skip, role: &str) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO projection_skips (projection, position, error, skipped_by)
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(skip.projection.as_str())
    .bind(skip.position as i64)
    .bind(&skip.error)
    .bind(&skip.skipped_by)
    .execute(&mut *tx)
    .await?;
    insert(
        &mut tx,
        Entry {
            key: format!("skip:{}:{}", skip.projection.as_str(), skip.position),
            at: OffsetDateTime::now_utc(),
            outcome: Outcome::Accepted,
            action: "projection.skipped".to_owned(),
            actor: Some(skip.skipped_by.as_str()),
            role: Some(role),
            request_id: None,
            correlation_id: None,
            tenant: None,
            namespace: None,
            scope: None,
            reason: Some(skip.error.clone()),
            before: None,
            after: None,
            message: Some(format!(
                "projection {} skipped position {}",
                skip.projection.as_str(),
                skip.position
            )),
            position: Some(skip.position),
        },
    )
    .await?;
    tx.commit().await
}

pub(crate) fn layer_action(change: &LayerChange) -> &'static str {
    match change {
        LayerChange::Replaced => "layer.replaced",
        LayerChange::Patched => "layer.patched",
        LayerChange::Cleared => "layer.cleared",
        LayerChange::RolledBack { .. } => "layer.rolled-back",
    }
}

/// The audit key of the `index`th event of the message at `position`.
fn accepted_key(position: u64, index: usize) -> String {
    if index == 0 {
        format!("accepted:{position}")
    } else {
        format!("accepted:{position}.{index}")
    }
}

/// Records the accepted change at `position`: one entry per event. Runs in
/// the projection's transaction *before* the message changes the tables, so
/// it reads the values as they were before the change.
pub async fn record_accepted(
    tx: &mut Transaction<'_, Postgres>,
    position: u64,
    message: &EventMessage<Value>,
    events: &AnyEvents,
) -> sqlx::Result<()> {
    match events {
        AnyEvents::Namespace(events) => record_namespace(tx, position, message, events).await,
        AnyEvents::Tenant(events) => record_tenant(tx, position, message, events).await,
        AnyEvents::Token(events) => record_token(tx, position, message, events).await,
        AnyEvents::ChangeRequest(events) => {
            record_change_request(tx, position, message, events).await
        }
        // Layer changes are recorded with their rows, a run of messages at a
        // time (`apply::LayerRun`).
        AnyEvents::Layer(_) | AnyEvents::Unknown(_) => Ok(()),
    }
}

/// A namespace defined: its description and schema before and after.
async fn record_namespace(
    tx: &mut Transaction<'_, Postgres>,
    position: u64,
    message: &EventMessage<Value>,
    events: &[NamespaceEvent],
) -> sqlx::Result<()> {
    let base = |index: usize, action: String| accepted_entry(position, index, message, action);
    // One message holds the events of one aggregate: each event's "before"
    // is the previous event's "after".
    let mut previous: Option<Value> = None;
    for (
        i,
        NamespaceEvent::NamespaceDefined {
            name,
            description,
            schema,
            ..
        },
    ) in events.iter().enumerate()
    {
        let before = match previous.take() {
            Some(v) => Some(v),
            None => sqlx::query("SELECT description, schema FROM namespaces WHERE name = $1")
                .bind(name.as_str())
                .fetch_optional(&mut **tx)
                .await?
                .map(|row| -> sqlx::Result<Value> {
                    Ok(json!({
                        "description": row.try_get::<String, _>("description")?,
                        "schema": row.try_get::<Option<Json<Value>>, _>("schema")?.map(|j| j.0),
                    }))
                })
                .transpose()?,
        };
        let after = json!({"description": description, "schema": schema});
        previous = Some(after.clone());
        insert(
            tx,
            Entry {
                namespace: Some(name.to_string()),
                before,
                after: Some(after),
                ..base(i, "namespace.defined".to_owned())
            },
        )
        .await?;
    }
    Ok(())
}

/// A tenant defined (its name and edition before and after) or erased.
async fn record_tenant(
    tx: &mut Transaction<'_, Postgres>,
    position: u64,
    message: &EventMessage<Value>,
    events: &[TenantEvent],
) -> sqlx::Result<()> {
    let base = |index: usize, action: String| accepted_entry(position, index, message, action);
    // One message holds the events of one aggregate: each event's "before"
    // is the previous event's "after".
    let mut previous: Option<Value> = None;
    for (i, event) in events.iter().enumerate() {
        let (id, name, edition) = match event {
            TenantEvent::TenantDefined {
                id, name, edition, ..
            } => (id, name, edition),
            TenantEvent::TenantErased { id, .. } => {
                insert(
                    tx,
                    Entry {
                        tenant: Some(id.to_string()),
                        ..base(i, "tenant.erased".to_owned())
                    },
                )
                .await?;
                continue;
            }
        };
        let before = match previous.take() {
            Some(v) => Some(v),
            None => sqlx::query("SELECT name, edition FROM tenants WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&mut **tx)
                .await?
                .map(|row| -> sqlx::Result<Value> {
                    Ok(json!({
                        "name": row.try_get::<Option<String>, _>("name")?,
                        "edition": row.try_get::<String, _>("edition")?,
                    }))
                })
                .transpose()?,
        };
        let after = json!({"name": name, "edition": edition});
        previous = Some(after.clone());
        insert(
            tx,
            Entry {
                tenant: Some(id.to_string()),
                before,
                after: Some(after),
                ..base(i, "tenant.defined".to_owned())
            },
        )
        .await?;
    }
    Ok(())
}

/// An API key issued or revoked.
async fn record_token(
    tx: &mut Transaction<'_, Postgres>,
    position: u64,
    message: &EventMessage<Value>,
    events: &[TokenEvent],
) -> sqlx::Result<()> {
    let base = |index: usize, action: String| accepted_entry(position, index, message, action);
    // Never anything secret: the token's name and role only.
    for (i, event) in events.iter().enumerate() {
        let entry = match event {
            TokenEvent::TokenIssued(token) => Entry {
                tenant: token.role.tenant().map(ToString::to_string),
                after: Some(json!({"id": token.id, "name": token.name, "role": token.role})),
                ..base(i, "token.issued".to_owned())
            },
            TokenEvent::TokenRevoked(_) => {
                let id = event.token_id();
                let row = sqlx::query("SELECT name, role, tenant FROM tokens WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut **tx)
                    .await?;
                let (tenant, before) = match row {
                    Some(row) => (
                        row.try_get::<Option<String>, _>("tenant")?,
                        Some(json!({
                            "id": id,
                            "name": row.try_get::<String, _>("name")?,
                            "role": row.try_get::<Json<Value>, _>("role")?.0,
                        })),
                    ),
                    None => (None, None),
                };
                let after = before.clone().map(|mut b| {
                    b["revoked"] = Value::Bool(true);
                    b
                });
                Entry {
                    tenant,
                    before,
                    after,
                    ..base(i, "token.revoked".to_owned())
                }
            }
        };
        insert(tx, entry).await?;
    }
    Ok(())
}

/// A change request opened, decided or concluded.
async fn record_change_request(
    tx: &mut Transaction<'_, Postgres>,
    position: u64,
    message: &EventMessage<Value>,
    events: &[ChangeRequestEvent],
) -> sqlx::Result<()> {
    let base = |index: usize, action: String| accepted_entry(position, index, message, action);
    for (i, event) in events.iter().enumerate() {
        let entry = match event {
            ChangeRequestEvent::ChangeRequestOpened(cr) => Entry {
                tenant: cr.scope.tenant.as_ref().map(ToString::to_string),
                namespace: Some(cr.namespace.to_string()),
                scope: Some(cr.scope.clone()),
                after: Some(json!({
                    "id": cr.id,
                    "status": Status::Open,
                    "change": cr.change,
                    "base_revision": cr.base_revision,
                })),
                message: Some(cr.message.clone()),
                ..base(i, "change-request.opened".to_owned())
            },
            other => {
                let status = other.status().as_str();
                let reason = other
                    .decision()
                    .and_then(|(_, reason)| reason)
                    .map(str::to_owned);
                let id = message
                    .aggregate_id
                    .split_once('.')
                    .map_or(message.aggregate_id.as_str(), |(_, id)| id);
                let row = sqlx::query(
                    "SELECT namespace, scope, tenant, status FROM change_requests WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&mut **tx)
                .await?;
                let mut entry = base(i, format!("change-request.{status}"));
                if let Some(row) = row {
                    entry.namespace = row.try_get("namespace")?;
                    entry.tenant = row.try_get("tenant")?;
                    entry.scope =
                        serde_json::from_value(row.try_get::<Json<Value>, _>("scope")?.0).ok();
                    entry.before = Some(json!({
                        "id": id,
                        "status": row.try_get::<String, _>("status")?,
                    }));
                }
                entry.after = Some(json!({"id": id, "status": status}));
                entry.message = reason;
                entry
            }
        };
        insert(tx, entry).await?;
    }
    Ok(())
}

/// What a record of the audit stream is, for the audit log.
enum StreamRecord {
    Refused,
    /// A rollout plan's change (the record's `action` is a [`PlanAction`]).
    Plan,
    /// An accepted change of the events stream, recorded from there.
    FromEvents,
}

impl StreamRecord {
    fn of(record: &AuditRecord) -> StreamRecord {
        match record.outcome {
            Outcome::Refused => StreamRecord::Refused,
            Outcome::Accepted if PlanAction::parse(&record.action).is_some() => StreamRecord::Plan,
            Outcome::Accepted => StreamRecord::FromEvents,
        }
    }
}

/// Records one record read from the audit stream: a refused attempt, or a
/// rollout plan's change. `fallback_at` is the stream's timestamp, used when
/// the record's own time is unreadable.
async fn record_from_stream(
    tx: &mut Transaction<'_, Postgres>,
    record: &AuditRecord,
    fallback_at: OffsetDateTime,
) -> sqlx::Result<()> {
    let at = OffsetDateTime::parse(&record.at, &Rfc3339).unwrap_or(fallback_at);
    let key = match StreamRecord::of(record) {
        StreamRecord::Refused => format!("refused:{}", record.id),
        StreamRecord::Plan => format!("rollout:{}", record.id),
        StreamRecord::FromEvents => return Ok(()),
    };
    insert(
        tx,
        Entry {
            key,
            at,
            outcome: record.outcome,
            action: record.action.clone(),
            actor: record.actor.as_deref(),
            role: record.role.as_deref(),
            request_id: record.request_id.as_deref(),
            correlation_id: record.correlation_id.as_deref(),
            tenant: record.tenant.clone(),
            namespace: record.namespace.clone(),
            scope: record.scope.clone(),
            reason: record.reason.clone(),
            before: record.before.clone(),
            after: record.after.clone(),
            message: record.message.clone(),
            position: record.position,
        },
    )
    .await
}

/// Follows the audit stream and projects its refused attempts and rollout
/// plans' changes into `audit`,
/// each exactly once: the row and the new offset commit together.
pub struct AuditProjector {
    pool: sqlx::PgPool,
    js: jetstream::Context,
    stream: String,
    applied: watch::Sender<u64>,
    halts: Halts,
    keyring: Option<std::sync::Arc<ecs_commands::keyring::Keyring>>,
}

impl AuditProjector {
    /// Opens tenant data sealed in the audit stream (see `ecs_commands::sealing`).
    pub fn with_keyring(mut self, keyring: std::sync::Arc<ecs_commands::keyring::Keyring>) -> Self {
        self.keyring = Some(keyring);
        self
    }

    /// Returns the projector and a receiver of the last applied stream sequence.
    pub fn new(
        pool: sqlx::PgPool,
        js: jetstream::Context,
        stream: impl Into<String>,
    ) -> (AuditProjector, watch::Receiver<u64>) {
        let (applied, receiver) = watch::channel(0);
        (
            AuditProjector {
                pool,
                js,
                stream: stream.into(),
                applied,
                halts: Halts::default(),
                keyring: None,
            },
            receiver,
        )
    }

    /// Reports a stop (an unreadable record) to these shared halts.
    pub fn with_halts(mut self, halts: Halts) -> Self {
        self.halts = halts;
        self
    }

    /// Runs until `shutdown`, resuming after NATS or PostgreSQL failures with
    /// a backoff.
    pub async fn run(&self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut backoff = Backoff::default();
        loop {
            match self.follow(&shutdown).await {
                Ok(Followed::Shutdown) => return Ok(()),
                Ok(Followed::Resume) => {
                    backoff = Backoff::default();
                    continue;
                }
                Err(error) => tracing::warn!(
                    error = format!("{error:#}"),
                    "audit projector interrupted; resuming"
                ),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(backoff.next()) => {}
            }
        }
    }

    async fn offset(&self) -> anyhow::Result<u64> {
        let mut tx = self.pool.begin().await?;
        let offset = offsets::lock(&mut tx, ProjectionName::Audit).await?;
        tx.commit().await?;
        Ok(offset)
    }

    async fn follow(&self, shutdown: &CancellationToken) -> anyhow::Result<Followed> {
        let mut offset = self.offset().await?;
        self.applied.send_replace(offset);
        let stream = self.js.get_stream(&self.stream).await?;
        let consumer = stream
            .create_consumer(OrderedConfig {
                deliver_policy: if offset == 0 {
                    DeliverPolicy::All
                } else {
                    DeliverPolicy::ByStartSequence {
                        start_sequence: offset + 1,
                    }
                },
                ..Default::default()
            })
            .await?;
        let mut messages = consumer.messages().await?;
        tracing::info!(offset, "audit projector following the audit stream");
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => return Ok(Followed::Shutdown),
                message = messages.next() => message,
            };
            let Some(message) = message else {
                anyhow::bail!("the audit stream consumer ended");
            };
            let message = message?;
            let info = message.info().map_err(|e| anyhow::anyhow!("{e}"))?;
            let position = info.stream_sequence;
            let published = info.published;
            if position <= offset {
                continue;
            }
            let span = tracing::info_span!("audit", position);
            let applied = retry_with_backoff(&span, shutdown, || {
                self.apply_once(position, &message.payload, published)
            })
            .await?;
            if let Unreadable(Some(error)) = applied {
                self.halts
                    .stop(ProjectionName::Audit, position, format!("{error:#}"));
                return Ok(if self.halts.wait_for_resume(shutdown).await {
                    Followed::Resume
                } else {
                    Followed::Shutdown
                });
            }
            self.halts.passed(ProjectionName::Audit, position);
            offset = position;
            self.applied.send_replace(position);
        }
    }

    /// Projects the record at `position`; answers the error, changing
    /// nothing, when the record cannot be read and no skip of it is recorded.
    async fn apply_once(
        &self,
        position: u64,
        payload: &[u8],
        published: OffsetDateTime,
    ) -> anyhow::Result<Unreadable> {
        let mut tx = self.pool.begin().await?;
        let last = offsets::lock(&mut tx, ProjectionName::Audit).await?;
        if position <= last {
            return Ok(Unreadable(None));
        }
        match serde_json::from_slice::<AuditRecord>(payload) {
            // Accepted changes of the events stream are recorded from there.
            Ok(record) if matches!(StreamRecord::of(&record), StreamRecord::FromEvents) => {
                tracing::debug!(position, "audit stream: skipping an accepted change");
            }
            Ok(mut record) => {
                if let Some(keyring) = &self.keyring {
                    keyring.open_record(&mut record).await?;
                }
                record_from_stream(&mut tx, &record, published).await?;
            }
            Err(error) => {
                let Some(by) = skip_recorded(&self.pool, ProjectionName::Audit, position).await?
                else {
                    return Ok(Unreadable(Some(error.into())));
                };
                tracing::warn!(%error, position, skipped_by = by, "audit stream: skipping an unreadable record as recorded");
            }
        }
        offsets::set(&mut tx, ProjectionName::Audit, position).await?;
        tx.commit().await?;
        Ok(Unreadable(None))
    }
}

/// The error of a record that cannot be read, if it could not.
struct Unreadable(Option<anyhow::Error>);

/// How following the audit stream ended without an error.
enum Followed {
    Shutdown,
    /// Stopped at an unreadable record, then asked to read it again.
    Resume,
}

/// Which entries a query asks for. Every filter is an exact match, except the
/// time range: `since` inclusive, `until` exclusive.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub tenant: Option<String>,
    pub namespace: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<Outcome>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
}

/// Where a page ends: the entries come newest first, ordered by `(at, key)`
/// descending; the next page starts strictly after this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCursor {
    pub at: OffsetDateTime,
    pub key: String,
}

/// One page of entries, and the cursor of the next page if there is one.
#[derive(Debug, Clone)]
pub struct AuditPage {
    pub entries: Vec<AuditRecord>,
    pub next: Option<AuditCursor>,
}

fn audit_record(row: &PgRow) -> sqlx::Result<(AuditRecord, OffsetDateTime)> {
    let at: OffsetDateTime = row.try_get("at")?;
    let outcome = match row.try_get::<String, _>("outcome")?.as_str() {
        "accepted" => Outcome::Accepted,
        _ => Outcome::Refused,
    };
    let scope = row
        .try_get::<Option<Json<Value>>, _>("scope")?
        .map(|j| serde_json::from_value(j.0))
        .transpose()
        .map_err(|e| sqlx::Error::Decode(format!("audit scope: {e}").into()))?;
    let record = AuditRecord {
        sealed: None,
        id: row.try_get("key")?,
        at: at
            .format(&Rfc3339)
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        outcome,
        action: row.try_get("action")?,
        actor: row.try_get("actor")?,
        role: row.try_get("role")?,
        request_id: row.try_get("request_id")?,
        correlation_id: row.try_get("correlation_id")?,
        tenant: row.try_get("tenant")?,
        namespace: row.try_get("namespace")?,
        scope,
        reason: row.try_get("reason")?,
        before: row
            .try_get::<Option<Json<Value>>, _>("before")?
            .map(|j| j.0),
        after: row.try_get::<Option<Json<Value>>, _>("after")?.map(|j| j.0),
        message: row.try_get("message")?,
        position: row.try_get::<Option<i64>, _>("position")?.map(|p| p as u64),
    };
    Ok((record, at))
}

impl crate::ReadModel {
    /// Up to `limit` entries matching `filter`, newest first, after `cursor`.
    pub async fn audit_page(
        &self,
        filter: &AuditFilter,
        cursor: Option<&AuditCursor>,
        limit: u32,
    ) -> sqlx::Result<AuditPage> {
        let mut query = QueryBuilder::<Postgres>::new("SELECT * FROM audit WHERE TRUE");
        let mut eq = |column: &str, value: &Option<String>| {
            if let Some(value) = value {
                query.push(format!(" AND {column} = "));
                query.push_bind(value.clone());
            }
        };
        eq("tenant", &filter.tenant);
        eq("namespace", &filter.namespace);
        eq("actor", &filter.actor);
        eq("action", &filter.action);
        eq(
            "outcome",
            &filter.outcome.map(|o| outcome_name(o).to_owned()),
        );
        if let Some(since) = filter.since {
            query.push(" AND at >= ").push_bind(since);
        }
        if let Some(until) = filter.until {
            query.push(" AND at < ").push_bind(until);
        }
        if let Some(cursor) = cursor {
            query
                .push(" AND (at, key) < (")
                .push_bind(cursor.at)
                .push(", ")
                .push_bind(cursor.key.clone())
                .push(")");
        }
        query
            .push(" ORDER BY at DESC, key DESC LIMIT ")
            .push_bind(i64::from(limit) + 1);
        let rows = query.build().fetch_all(self.pool()).await?;
        let mut entries = Vec::with_capacity(rows.len());
        let mut next = None;
        for (i, row) in rows.iter().enumerate() {
            if i as u64 >= u64::from(limit) {
                break;
            }
            let (record, at) = audit_record(row)?;
            if i as u64 + 1 == u64::from(limit) && rows.len() as u64 > u64::from(limit) {
                next = Some(AuditCursor {
                    at,
                    key: record.id.clone(),
                });
            }
            entries.push(record);
        }
        Ok(AuditPage { entries, next })
    }
}

impl crate::lease::Singleton for AuditProjector {
    async fn run_held(&mut self, token: CancellationToken) -> anyhow::Result<()> {
        self.run(token).await
    }
}
