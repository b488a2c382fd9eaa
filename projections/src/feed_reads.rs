//! The change feed rebuilt from the projections, for readers that follow it
//! over HTTP (`/v1/feed`) instead of NATS.
//!
//! A reader asks for every item changed after the last position it was sent.
//! The answer must say up to which position it is complete, so the reader
//! can ask for what follows without a gap: the items and the projection's
//! applied position are read in one repeatable-read snapshot, in which every
//! change at or below that position is visible and none above it (the
//! projector commits a message's rows and its position together).

use ecs_domain::NamespaceName;
use ecs_domain::feed::{FEED_VERSION, FeedItem, FeedMessage};
use serde_json::Value;
use sqlx::Row;
use sqlx::types::Json;
use time::format_description::well_known::Rfc3339;

use crate::ReadModel;
use crate::halt::ProjectionName;

/// The items changed after a position, complete up to `position`.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedBatch {
    /// The current state of every changed item, as feed messages in position
    /// order.
    pub messages: Vec<FeedMessage>,
    /// The projection's applied position in the snapshot read: every change
    /// at or below it is in `messages` (or was at or below `after`).
    pub position: u64,
}

fn decode(error: serde_json::Error) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(error))
}

fn at(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

impl ReadModel {
    /// The current state of every item of `namespaces` (and every tenant)
    /// changed after `after`, read in one snapshot, with the position that
    /// snapshot is complete up to.
    pub async fn feed_since(
        &self,
        namespaces: &[NamespaceName],
        after: u64,
    ) -> sqlx::Result<FeedBatch> {
        let this = self.clone();
        let namespaces = namespaces.to_vec();
        crate::detached::detached(async move { this.read_feed(&namespaces, after).await }).await
    }

    /// [`ReadModel::feed_since`]'s transaction.
    async fn read_feed(&self, namespaces: &[NamespaceName], after: u64) -> sqlx::Result<FeedBatch> {
        let names: Vec<&str> = namespaces.iter().map(|n| n.as_str()).collect();
        let after = after.min(i64::MAX as u64) as i64;
        let mut tx = self.pool().begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let position: i64 = sqlx::query_scalar(
            "SELECT coalesce((SELECT last_position FROM projection_offsets WHERE name = $1), 0)",
        )
        .bind(ProjectionName::Config.as_str())
        .fetch_one(&mut *tx)
        .await?;
        let mut messages = Vec::new();
        for row in sqlx::query(
            "SELECT name, kind, description, schema, revision, position, updated_at FROM namespaces
             WHERE name = ANY($1) AND position > $2",
        )
        .bind(&names)
        .bind(after)
        .fetch_all(&mut *tx)
        .await?
        {
            messages.push(FeedMessage {
                v: FEED_VERSION,
                position: row.try_get::<i64, _>("position")? as u64,
                at: at(row.try_get("updated_at")?),
                item: FeedItem::Namespace {
                    namespace: serde_json::from_value(Value::String(row.try_get("name")?))
                        .map_err(decode)?,
                    revision: row.try_get::<i64, _>("revision")? as u64,
                    namespace_kind: serde_json::from_value(Value::String(row.try_get("kind")?))
                        .map_err(decode)?,
                    description: row.try_get("description")?,
                    schema: row
                        .try_get::<Option<Json<Value>>, _>("schema")?
                        .map(|j| j.0),
                },
                traceparent: None,
            });
        }
        for row in sqlx::query(
            "SELECT id, name, edition, revision, position, updated_at FROM tenants WHERE position > $1",
        )
        .bind(after)
        .fetch_all(&mut *tx)
        .await?
        {
            messages.push(FeedMessage {
                v: FEED_VERSION,
                position: row.try_get::<i64, _>("position")? as u64,
                at: at(row.try_get("updated_at")?),
                item: FeedItem::Tenant {
                    tenant: serde_json::from_value(Value::String(row.try_get("id")?))
                        .map_err(decode)?,
                    revision: row.try_get::<i64, _>("revision")? as u64,
                    edition: serde_json::from_value(Value::String(row.try_get("edition")?))
                        .map_err(decode)?,
                    name: row.try_get("name")?,
                },
                traceparent: None,
            });
        }
        for row in sqlx::query(
            "SELECT namespace, scope, values, lock, revision, position, updated_at FROM layers
             WHERE namespace = ANY($1) AND position > $2",
        )
        .bind(&names)
        .bind(after)
        .fetch_all(&mut *tx)
        .await?
        {
            messages.push(FeedMessage {
                v: FEED_VERSION,
                position: row.try_get::<i64, _>("position")? as u64,
                at: at(row.try_get("updated_at")?),
                item: FeedItem::Layer {
                    namespace: serde_json::from_value(Value::String(row.try_get("namespace")?))
                        .map_err(decode)?,
                    scope: serde_json::from_value(row.try_get::<Json<Value>, _>("scope")?.0)
                        .map_err(decode)?,
                    revision: row.try_get::<i64, _>("revision")? as u64,
                    values: row.try_get::<Json<Value>, _>("values")?.0,
                    lock: serde_json::from_value(row.try_get::<Json<Value>, _>("lock")?.0)
                        .map_err(decode)?,
                },
                traceparent: None,
            });
        }
        tx.commit().await?;
        messages.sort_by_key(|m| m.position);
        Ok(FeedBatch {
            messages,
            position: position.max(0) as u64,
        })
    }
}
