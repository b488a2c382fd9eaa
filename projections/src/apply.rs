//! Applies one stream message to the projection tables, inside the caller's
//! transaction.

use ecs_commands::{AnyEvents, EventMessage};
use ecs_domain::change_request::{ChangeRequestEvent, Status};
use std::collections::{HashMap, HashSet};

use ecs_domain::{LayerChange, LayerEvent, NamespaceEvent, Scope, TenantEvent, TokenEvent};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{Postgres, Row, Transaction};

/// Every table the projection owns, replaced by a rebuild (with `audit`).
pub const TABLES: &[&str] = &[
    "commands",
    "namespaces",
    "namespace_history",
    "tenants",
    "tenant_history",
    "layers",
    "layer_history",
    "tokens",
    "change_requests",
];

/// Writes the effects of consecutive messages, in order. Runs of layer
/// changes (nearly all messages) are written with a few set-based statements
/// per run; every other message is applied on its own, after the run before
/// it, so each message sees the tables as the messages before it left them.
pub async fn apply_messages(
    tx: &mut Transaction<'_, Postgres>,
    messages: &[(u64, EventMessage<Value>, AnyEvents)],
) -> sqlx::Result<()> {
    let mut run = LayerRun::default();
    for (position, message, events) in messages {
        match events {
            AnyEvents::Layer(events) => run.push(*position, message, events),
            _ => {
                run.flush(tx).await?;
                apply_message(tx, *position, message, events).await?;
            }
        }
    }
    run.flush(tx).await
}

/// Writes the effects of the message at `position`, one that is not a layer
/// change (those are written by [`LayerRun`]).
async fn apply_message(
    tx: &mut Transaction<'_, Postgres>,
    position: u64,
    message: &EventMessage<Value>,
    events: &AnyEvents,
) -> sqlx::Result<()> {
    let pos = position as i64;
    sqlx::query(
        "INSERT INTO commands (position, command_id, aggregate_type, aggregate_id, revision, at, actor)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(pos)
    .bind(&message.command_id)
    .bind(&message.aggregate_type)
    .bind(&message.aggregate_id)
    .bind(message.revision as i64)
    .bind(message.at)
    .bind(&message.actor)
    .execute(&mut **tx)
    .await?;
    // Before the tables change: the audit entry records the values before.
    crate::audit::record_accepted(tx, position, message, events).await?;

    match events {
        AnyEvents::Namespace(events) => apply_namespace(tx, pos, message, events).await?,
        AnyEvents::Tenant(events) => apply_tenant(tx, pos, message, events).await?,
        // Written by `LayerRun`.
        AnyEvents::Layer(_) => {}
        AnyEvents::Token(events) => apply_token(tx, pos, message, events).await?,
        AnyEvents::ChangeRequest(events) => {
            for event in events {
                apply_change_request(tx, pos, message, event).await?;
            }
        }
        AnyEvents::Unknown(kind) => {
            tracing::warn!(position, aggregate_type = %kind, "skipping a message of an unknown aggregate type");
        }
    }
    Ok(())
}

/// A namespace defined: its row and its history.
async fn apply_namespace(
    tx: &mut Transaction<'_, Postgres>,
    pos: i64,
    message: &EventMessage<Value>,
    events: &[NamespaceEvent],
) -> sqlx::Result<()> {
    for NamespaceEvent::NamespaceDefined {
        name,
        revision,
        kind,
        description,
        schema,
        approval,
    } in events
    {
        sqlx::query(
            "INSERT INTO namespaces (name, description, schema, revision, position, updated_at, updated_by, approval, kind)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (name) DO UPDATE SET description = $2, schema = $3, revision = $4,
                position = $5, updated_at = $6, updated_by = $7, approval = $8, kind = $9",
        )
        .bind(name.as_str())
        .bind(description)
        .bind(schema.as_ref().map(Json))
        .bind(*revision as i64)
        .bind(pos)
        .bind(message.at)
        .bind(&message.actor)
        .bind(approval.as_ref().map(Json))
        .bind(kind.as_str())
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO namespace_history (name, revision, position, at, actor, description, schema, approval, kind)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
        )
        .bind(name.as_str())
        .bind(*revision as i64)
        .bind(pos)
        .bind(message.at)
        .bind(&message.actor)
        .bind(description)
        .bind(schema.as_ref().map(Json))
        .bind(approval.as_ref().map(Json))
        .bind(kind.as_str())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// A tenant defined or erased: its row and its history.
async fn apply_tenant(
    tx: &mut Transaction<'_, Postgres>,
    pos: i64,
    message: &EventMessage<Value>,
    events: &[TenantEvent],
) -> sqlx::Result<()> {
    for event in events {
        let (id, revision, name, edition) = match event {
            TenantEvent::TenantDefined {
                id,
                revision,
                name,
                edition,
            } => (id, revision, name, edition),
            TenantEvent::TenantErased { id, .. } => {
                erase_tenant(tx, id.as_str(), pos, message).await?;
                continue;
            }
        };
        sqlx::query(
            "INSERT INTO tenants (id, name, edition, revision, position, updated_at, updated_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (id) DO UPDATE SET name = $2, edition = $3, revision = $4,
                position = $5, updated_at = $6, updated_by = $7",
        )
        .bind(id.as_str())
        .bind(name)
        .bind(edition.as_str())
        .bind(*revision as i64)
        .bind(pos)
        .bind(message.at)
        .bind(&message.actor)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO tenant_history (id, revision, position, at, actor, name, edition)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(id.as_str())
        .bind(*revision as i64)
        .bind(pos)
        .bind(message.at)
        .bind(&message.actor)
        .bind(name)
        .bind(edition.as_str())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// An API key issued or revoked.
async fn apply_token(
    tx: &mut Transaction<'_, Postgres>,
    pos: i64,
    message: &EventMessage<Value>,
    events: &[TokenEvent],
) -> sqlx::Result<()> {
    for event in events {
        match event {
            TokenEvent::TokenIssued(token) => {
                sqlx::query(
                    "INSERT INTO tokens (id, name, role, tenant, secret_hash, expires_at, issued_by, issued_at, position, identity)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
                )
                .bind(&token.id)
                .bind(&token.name)
                .bind(Json(&token.role))
                .bind(token.role.tenant().map(|t| t.as_str()))
                .bind(&token.secret_hash)
                .bind(token.expires_at)
                .bind(&token.issued_by)
                .bind(message.at)
                .bind(pos)
                .bind(token.identity().as_str())
                .execute(&mut **tx)
                .await?;
            }
            TokenEvent::TokenRevoked(_) => {
                sqlx::query("UPDATE tokens SET revoked_at = $2, position = $3 WHERE id = $1")
                    .bind(event.token_id())
                    .bind(message.at)
                    .bind(pos)
                    .execute(&mut **tx)
                    .await?;
            }
        }
    }
    Ok(())
}

async fn apply_change_request(
    tx: &mut Transaction<'_, Postgres>,
    pos: i64,
    message: &EventMessage<Value>,
    event: &ChangeRequestEvent,
) -> sqlx::Result<()> {
    let (status, by, reason) = match event {
        ChangeRequestEvent::ChangeRequestOpened(cr) => {
            sqlx::query(
                "INSERT INTO change_requests (id, namespace, scope_key, scope, tenant, change, message, base_revision,
                    author, status, opened_at, position)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING",
            )
            .bind(&cr.id)
            .bind(cr.namespace.as_str())
            .bind(cr.scope.key())
            .bind(Json(&cr.scope))
            .bind(cr.scope.tenant.as_ref().map(|t| t.as_str()))
            .bind(Json(&cr.change))
            .bind(&cr.message)
            .bind(cr.base_revision as i64)
            .bind(&cr.author)
            .bind(Status::Open.as_str())
            .bind(message.at)
            .bind(pos)
            .execute(&mut **tx)
            .await?;
            return Ok(());
        }
        other => {
            let (by, reason) = other.decision().unwrap_or_default();
            (other.status().as_str(), by, reason)
        }
    };
    let id = message
        .aggregate_id
        .split_once('.')
        .map_or(message.aggregate_id.as_str(), |(_, id)| id);
    sqlx::query(
        "UPDATE change_requests SET status = $2, decided_by = $3, reason = $4, decided_at = $5, position = $6
         WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(by)
    .bind(reason)
    .bind(message.at)
    .bind(pos)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Makes everything of an erased tenant unreadable in the projections —
/// values, names, messages, reasons, request metadata, its keys' names — and
/// revokes its keys, keeping the record that it was erased, when and by whom.
/// Audit entries belong to the tenant when they name it or when one of its
/// keys acted; the erasure's own entry stays whole.
async fn erase_tenant(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &str,
    position: i64,
    message: &EventMessage<Value>,
) -> sqlx::Result<()> {
    let erased = Json(ecs_commands::keyring::erased_marker());
    let statements: [(&str, bool); 6] = [
        (
            "UPDATE tenants SET name = NULL, erased_at = $2, erased_by = $3 WHERE id = $1",
            true,
        ),
        ("UPDATE tenant_history SET name = NULL WHERE id = $1", false),
        (
            "UPDATE layers SET values = $2, message = '' WHERE tenant = $1",
            false,
        ),
        (
            "UPDATE layer_history SET values = $2, message = '' WHERE tenant = $1",
            false,
        ),
        (
            "UPDATE change_requests SET message = '', reason = NULL, change = CASE
                 WHEN change ? 'values' THEN jsonb_set(change, '{values}', $2)
                 WHEN change ? 'patch' THEN jsonb_set(change, '{patch}', $2)
                 ELSE change END
             WHERE tenant = $1",
            false,
        ),
        (
            "UPDATE audit SET before = CASE WHEN before IS NULL THEN NULL ELSE $2 END,
                 after = CASE WHEN after IS NULL THEN NULL ELSE $2 END, message = NULL,
                 reason = NULL, request_id = NULL, correlation_id = NULL
             WHERE action <> 'tenant.erased'
               AND (tenant = $1
                    OR actor IN (SELECT 'token:' || id FROM tokens WHERE tenant = $1))",
            false,
        ),
    ];
    for (sql, with_who) in statements {
        let query = sqlx::query(sql).bind(tenant);
        let query = if with_who {
            query.bind(message.at).bind(&message.actor)
        } else {
            query.bind(&erased)
        };
        query.execute(&mut **tx).await?;
    }
    sqlx::query("UPDATE tenants SET erased_position = $2 WHERE id = $1")
        .bind(tenant)
        .bind(position)
        .execute(&mut **tx)
        .await?;
    // Last: the audit statement finds the tenant's keys by their tenant.
    sqlx::query(
        "UPDATE tokens SET name = '', revoked_at = COALESCE(revoked_at, $2) WHERE tenant = $1",
    )
    .bind(tenant)
    .bind(message.at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Consecutive layer-change messages, written together: one statement each
/// for `commands`, `audit`, `layer_history` and the `layers` upsert, plus one
/// read of the layers' values before the run (the audit entries' "before").
#[derive(Default)]
struct LayerRun<'a> {
    messages: Vec<(u64, &'a EventMessage<Value>, &'a [LayerEvent])>,
}

impl<'a> LayerRun<'a> {
    fn push(&mut self, position: u64, message: &'a EventMessage<Value>, events: &'a [LayerEvent]) {
        self.messages.push((position, message, events));
    }

    async fn flush(&mut self, tx: &mut Transaction<'_, Postgres>) -> sqlx::Result<()> {
        let messages = std::mem::take(&mut self.messages);
        if messages.is_empty() {
            return Ok(());
        }
        insert_commands(tx, &messages).await?;

        // Every event as a row, with its layer's key.
        let rows: Vec<LayerRow<'_>> = messages
            .iter()
            .flat_map(|(position, message, events)| {
                events.iter().enumerate().map(|(index, event)| {
                    let LayerEvent::LayerChanged {
                        namespace,
                        scope,
                        revision,
                        values,
                        lock,
                        message: text,
                        change,
                    } = event;
                    LayerRow {
                        position: *position,
                        index,
                        message,
                        key: (namespace.as_str(), scope.key()),
                        scope,
                        revision: *revision,
                        values,
                        lock,
                        text,
                        change,
                    }
                })
            })
            .collect();

        // Each layer's values as stored before the run, then as each event
        // leaves them: an event's "before" is what it replaces.
        let (namespaces, scope_keys): (Vec<&str>, Vec<&str>) = rows
            .iter()
            .map(|r| (r.key.0, r.key.1.as_str()))
            .collect::<HashSet<_>>()
            .into_iter()
            .unzip();
        let stored = sqlx::query(
            "SELECT l.namespace, l.scope_key, l.values FROM layers l
             JOIN UNNEST($1::text[], $2::text[]) AS k(namespace, scope_key)
               ON l.namespace = k.namespace AND l.scope_key = k.scope_key",
        )
        .bind(&namespaces)
        .bind(&scope_keys)
        .fetch_all(&mut **tx)
        .await?;
        let mut values: HashMap<(String, String), Value> = HashMap::new();
        for row in stored {
            values.insert(
                (row.try_get("namespace")?, row.try_get("scope_key")?),
                row.try_get::<Json<Value>, _>("values")?.0,
            );
        }
        let mut audit = Vec::with_capacity(rows.len());
        for row in &rows {
            let before = values.insert(
                (row.key.0.to_owned(), row.key.1.clone()),
                row.values.clone(),
            );
            audit.push(crate::audit::Entry {
                tenant: row.scope.tenant.as_ref().map(ToString::to_string),
                namespace: Some(row.key.0.to_owned()),
                scope: Some(row.scope.clone()),
                before,
                after: Some(row.values.clone()),
                message: Some(row.text.to_owned()),
                ..crate::audit::accepted_entry(
                    row.position,
                    row.index,
                    row.message,
                    crate::audit::layer_action(row.change).to_owned(),
                )
            });
        }
        crate::audit::insert_all(tx, &audit).await?;
        insert_layer_history(tx, &rows).await?;

        // The layers table keeps each layer's last change of the run.
        let mut last: HashMap<&(&str, String), &LayerRow<'_>> = HashMap::new();
        for row in &rows {
            last.insert(&row.key, row);
        }
        let latest: Vec<&LayerRow<'_>> = last.into_values().collect();
        upsert_layers(tx, &latest).await
    }
}

/// One layer event of a run.
struct LayerRow<'a> {
    position: u64,
    /// The event's index in its message.
    index: usize,
    message: &'a EventMessage<Value>,
    /// (namespace, scope key): the layer.
    key: (&'a str, String),
    scope: &'a Scope,
    revision: u64,
    values: &'a Value,
    lock: &'a [String],
    text: &'a str,
    change: &'a LayerChange,
}

async fn insert_commands(
    tx: &mut Transaction<'_, Postgres>,
    messages: &[(u64, &EventMessage<Value>, &[LayerEvent])],
) -> sqlx::Result<()> {
    let column = |f: fn(&EventMessage<Value>) -> &str| {
        messages.iter().map(|(_, m, _)| f(m)).collect::<Vec<_>>()
    };
    sqlx::query(
        "INSERT INTO commands (position, command_id, aggregate_type, aggregate_id, revision, at, actor)
         SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[],
            $6::timestamptz[], $7::text[])
         ON CONFLICT DO NOTHING",
    )
    .bind(messages.iter().map(|(p, _, _)| *p as i64).collect::<Vec<_>>())
    .bind(column(|m| &m.command_id))
    .bind(column(|m| &m.aggregate_type))
    .bind(column(|m| &m.aggregate_id))
    .bind(messages.iter().map(|(_, m, _)| m.revision as i64).collect::<Vec<_>>())
    .bind(messages.iter().map(|(_, m, _)| m.at).collect::<Vec<_>>())
    .bind(column(|m| &m.actor))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_layer_history(
    tx: &mut Transaction<'_, Postgres>,
    rows: &[LayerRow<'_>],
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO layer_history (namespace, scope_key, scope, tenant, revision, position, at, actor,
            message, values, lock, change)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::jsonb[], $4::text[], $5::bigint[],
            $6::bigint[], $7::timestamptz[], $8::text[], $9::text[], $10::jsonb[], $11::jsonb[],
            $12::jsonb[])
         ON CONFLICT DO NOTHING",
    )
    .bind(rows.iter().map(|r| r.key.0).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.key.1.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| Json(r.scope)).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.scope.tenant.as_ref().map(|t| t.as_str())).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.revision as i64).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.position as i64).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.message.at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.message.actor.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.text).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| Json(r.values)).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| Json(r.lock)).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| Json(r.change)).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn upsert_layers(
    tx: &mut Transaction<'_, Postgres>,
    rows: &[&LayerRow<'_>],
) -> sqlx::Result<()> {
    let dimension =
        |f: fn(&Scope) -> Option<&str>| rows.iter().map(|r| f(r.scope)).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO layers (namespace, scope_key, scope, env, service, tenant, edition, values, lock,
            revision, position, updated_at, updated_by, message)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::jsonb[], $4::text[], $5::text[], $6::text[],
            $7::text[], $8::jsonb[], $9::jsonb[], $10::bigint[], $11::bigint[], $12::timestamptz[],
            $13::text[], $14::text[])
         ON CONFLICT (namespace, scope_key) DO UPDATE SET values = EXCLUDED.values,
            lock = EXCLUDED.lock, revision = EXCLUDED.revision, position = EXCLUDED.position,
            updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by,
            message = EXCLUDED.message",
    )
    .bind(rows.iter().map(|r| r.key.0).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.key.1.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| Json(r.scope)).collect::<Vec<_>>())
    .bind(dimension(|s| s.env.as_ref().map(|v| v.as_str())))
    .bind(dimension(|s| s.service.as_ref().map(|v| v.as_str())))
    .bind(dimension(|s| s.tenant.as_ref().map(|v| v.as_str())))
    .bind(dimension(|s| s.edition.as_ref().map(|v| v.as_str())))
    .bind(rows.iter().map(|r| Json(r.values)).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| Json(r.lock)).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.revision as i64).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.position as i64).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.message.at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.message.actor.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.text).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
