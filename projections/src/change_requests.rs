//! Reads of change requests.

use ecs_domain::change_request::{ProposedChange, Status};
use ecs_domain::{NamespaceName, Scope, TenantId};
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use time::OffsetDateTime;

use crate::ReadModel;

/// A change request as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeRequestRow {
    pub id: String,
    pub namespace: NamespaceName,
    pub scope: Scope,
    pub change: ProposedChange,
    pub message: String,
    pub base_revision: u64,
    pub author: String,
    pub status: Status,
    pub decided_by: Option<String>,
    pub reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub opened_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub decided_at: Option<OffsetDateTime>,
    pub position: u64,
}

fn decode<T: serde::de::DeserializeOwned>(value: Value) -> sqlx::Result<T> {
    serde_json::from_value(value).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn row(row: &PgRow) -> sqlx::Result<ChangeRequestRow> {
    Ok(ChangeRequestRow {
        id: row.try_get("id")?,
        namespace: decode(Value::String(row.try_get("namespace")?))?,
        scope: decode(row.try_get::<Json<Value>, _>("scope")?.0)?,
        change: decode(row.try_get::<Json<Value>, _>("change")?.0)?,
        message: row.try_get("message")?,
        base_revision: row.try_get::<i64, _>("base_revision")? as u64,
        author: row.try_get("author")?,
        status: {
            let name: String = row.try_get("status")?;
            Status::parse(&name).ok_or_else(|| {
                sqlx::Error::Decode(format!("unknown change request status {name:?}").into())
            })?
        },
        decided_by: row.try_get("decided_by")?,
        reason: row.try_get("reason")?,
        opened_at: row.try_get("opened_at")?,
        decided_at: row.try_get("decided_at")?,
        position: row.try_get::<i64, _>("position")? as u64,
    })
}

impl ReadModel {
    pub async fn change_request(&self, id: &str) -> sqlx::Result<Option<ChangeRequestRow>> {
        sqlx::query("SELECT * FROM change_requests WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .map(|r| row(&r))
            .transpose()
    }

    /// Change requests, newest first, filtered by status and namespace, and
    /// bounded to one tenant's layers when `tenant` is given.
    pub async fn change_requests(
        &self,
        status: Option<Status>,
        namespace: Option<&NamespaceName>,
        tenant: Option<&TenantId>,
    ) -> sqlx::Result<Vec<ChangeRequestRow>> {
        sqlx::query(
            "SELECT * FROM change_requests
             WHERE ($1::text IS NULL OR status = $1)
               AND ($2::text IS NULL OR namespace = $2)
               AND ($3::text IS NULL OR tenant = $3)
             ORDER BY opened_at DESC, id LIMIT 1000",
        )
        .bind(status.map(Status::as_str))
        .bind(namespace.map(|n| n.as_str()))
        .bind(tenant.map(|t| t.as_str()))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(row)
        .collect()
    }
}
