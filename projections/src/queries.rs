//! Reads of the projection tables, current and past.

use async_trait::async_trait;
use ecs_domain::ports::{ConfigReader, NamespaceLayers};
use ecs_domain::{
    DomainError, EditionName, LayerChange, LayerState, NamespaceName, NamespaceState, Scope,
    TenantId, TenantState,
};
use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{PgPool, Row, postgres::PgRow};
use time::OffsetDateTime;

use crate::halt::ProjectionName;

/// A page of a layer's history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPage {
    /// Oldest first.
    pub revisions: Vec<LayerRevision>,
    /// The revision the next page starts after; `None` on the last page.
    pub next: Option<u64>,
}

/// Where a revision stands in a tenant's timeline: the keyset of its pages.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TimelineKey {
    pub position: u64,
    pub namespace: String,
    pub scope_key: String,
}

/// A page of a tenant's timeline: its layers' revisions across namespaces.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelinePage {
    /// Newest first.
    pub revisions: Vec<LayerRevision>,
    /// The key the next (older) page starts before; `None` on the last page.
    pub next: Option<TimelineKey>,
}

/// Read access to the projections.
#[derive(Clone)]
pub struct ReadModel {
    pool: PgPool,
}

/// A namespace as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NamespaceRow {
    #[serde(flatten)]
    pub state: NamespaceState,
    pub position: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A tenant as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TenantRow {
    #[serde(flatten)]
    pub state: TenantState,
    pub position: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// One revision of a layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerRevision {
    #[serde(flatten)]
    pub state: LayerState,
    pub position: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub actor: String,
    pub message: String,
    pub change: LayerChange,
}

/// An accepted command, found by its id.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandRow {
    pub position: u64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub revision: u64,
}

/// Everything resolution needs about one namespace at one moment.
#[derive(Debug, Clone)]
pub struct NamespaceSnapshot {
    pub namespace: NamespaceState,
    pub layers: Vec<LayerState>,
    /// The position the snapshot reflects.
    pub position: u64,
}

fn unavailable(error: sqlx::Error) -> DomainError {
    DomainError::Unavailable(error.to_string())
}

fn decode<T: serde::de::DeserializeOwned>(value: Value, what: &str) -> sqlx::Result<T> {
    serde_json::from_value(value).map_err(|e| sqlx::Error::Decode(format!("{what}: {e}").into()))
}

fn namespace_state(row: &PgRow) -> sqlx::Result<NamespaceState> {
    Ok(NamespaceState {
        name: decode(Value::String(row.try_get("name")?), "namespace name")?,
        kind: decode(Value::String(row.try_get("kind")?), "namespace kind")?,
        description: row.try_get("description")?,
        schema: row
            .try_get::<Option<Json<Value>>, _>("schema")?
            .map(|j| j.0),
        approval: row
            .try_get::<Option<Json<Value>>, _>("approval")?
            .map(|j| decode(j.0, "approval"))
            .transpose()?,
        revision: row.try_get::<i64, _>("revision")? as u64,
    })
}

fn tenant_state(row: &PgRow) -> sqlx::Result<TenantState> {
    Ok(TenantState {
        id: decode(Value::String(row.try_get("id")?), "tenant id")?,
        name: row.try_get("name")?,
        edition: decode(Value::String(row.try_get("edition")?), "edition")?,
        revision: row.try_get::<i64, _>("revision")? as u64,
        erased: row
            .try_get::<Option<OffsetDateTime>, _>("erased_at")
            .ok()
            .flatten()
            .is_some(),
    })
}

fn layer_state(row: &PgRow) -> sqlx::Result<LayerState> {
    Ok(LayerState {
        namespace: decode(Value::String(row.try_get("namespace")?), "namespace")?,
        scope: decode(row.try_get::<Json<Value>, _>("scope")?.0, "scope")?,
        values: row.try_get::<Json<Value>, _>("values")?.0,
        lock: decode(row.try_get::<Json<Value>, _>("lock")?.0, "lock")?,
        revision: row.try_get::<i64, _>("revision")? as u64,
    })
}

fn layer_revision(row: &PgRow) -> sqlx::Result<LayerRevision> {
    Ok(LayerRevision {
        state: layer_state(row)?,
        position: row.try_get::<i64, _>("position")? as u64,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        message: row.try_get("message")?,
        change: decode(row.try_get::<Json<Value>, _>("change")?.0, "change")?,
    })
}

const LAYER_HISTORY_COLUMNS: &str =
    "namespace, scope, values, lock, revision, position, at, actor, message, change";

/// Which layers a snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layers {
    /// Every layer of the namespace.
    All,
    /// Only those that can apply to a context of the snapshot's tenant (or of
    /// no tenant): untenanted layers and the tenant's own.
    Applicable,
}

impl ReadModel {
    pub fn new(pool: PgPool) -> Self {
        ReadModel { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The last stream position applied to the projections.
    pub async fn applied_position(&self) -> sqlx::Result<u64> {
        let position: Option<i64> =
            sqlx::query_scalar("SELECT last_position FROM projection_offsets WHERE name = $1")
                .bind(ProjectionName::Config.as_str())
                .fetch_optional(&self.pool)
                .await?;
        Ok(position.unwrap_or(0) as u64)
    }

    /// The last position whose command was accepted at or before `at`.
    pub async fn position_at_time(&self, at: OffsetDateTime) -> sqlx::Result<u64> {
        let position: Option<i64> =
            sqlx::query_scalar("SELECT max(position) FROM commands WHERE at <= $1")
                .bind(at)
                .fetch_one(&self.pool)
                .await?;
        Ok(position.unwrap_or(0) as u64)
    }

    pub async fn command(&self, command_id: &str) -> sqlx::Result<Option<CommandRow>> {
        let row = sqlx::query(
            "SELECT position, aggregate_type, aggregate_id, revision FROM commands
             WHERE command_id = $1 ORDER BY position DESC LIMIT 1",
        )
        .bind(command_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(CommandRow {
                position: row.try_get::<i64, _>("position")? as u64,
                aggregate_type: row.try_get("aggregate_type")?,
                aggregate_id: row.try_get("aggregate_id")?,
                revision: row.try_get::<i64, _>("revision")? as u64,
            })
        })
        .transpose()
    }

    pub async fn namespaces(&self) -> sqlx::Result<Vec<NamespaceRow>> {
        sqlx::query("SELECT * FROM namespaces ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                Ok(NamespaceRow {
                    state: namespace_state(row)?,
                    position: row.try_get::<i64, _>("position")? as u64,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect()
    }

    pub async fn namespace(&self, name: &NamespaceName) -> sqlx::Result<Option<NamespaceRow>> {
        sqlx::query("SELECT * FROM namespaces WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await?
            .map(|row| {
                Ok(NamespaceRow {
                    state: namespace_state(&row)?,
                    position: row.try_get::<i64, _>("position")? as u64,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .transpose()
    }

    pub async fn tenants(&self) -> sqlx::Result<Vec<TenantRow>> {
        sqlx::query("SELECT * FROM tenants ORDER BY id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                Ok(TenantRow {
                    state: tenant_state(row)?,
                    position: row.try_get::<i64, _>("position")? as u64,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect()
    }

    pub async fn tenant(&self, id: &TenantId) -> sqlx::Result<Option<TenantRow>> {
        sqlx::query("SELECT * FROM tenants WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .map(|row| {
                Ok(TenantRow {
                    state: tenant_state(&row)?,
                    position: row.try_get::<i64, _>("position")? as u64,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .transpose()
    }

    /// A layer's latest revision at or before `position` (`None`: now).
    pub async fn layer(
        &self,
        namespace: &NamespaceName,
        scope: &Scope,
        position: Option<u64>,
    ) -> sqlx::Result<Option<LayerRevision>> {
        sqlx::query(&format!(
            "SELECT {LAYER_HISTORY_COLUMNS} FROM layer_history
             WHERE namespace = $1 AND scope_key = $2 AND position <= $3
             ORDER BY revision DESC LIMIT 1"
        ))
        .bind(namespace.as_str())
        .bind(scope.key())
        .bind(position.map_or(i64::MAX, |p| p.min(i64::MAX as u64) as i64))
        .fetch_optional(&self.pool)
        .await?
        .map(|row| layer_revision(&row))
        .transpose()
    }

    /// Every revision of a layer, oldest first.
    pub async fn layer_history(
        &self,
        namespace: &NamespaceName,
        scope: &Scope,
    ) -> sqlx::Result<Vec<LayerRevision>> {
        sqlx::query(&format!(
            "SELECT {LAYER_HISTORY_COLUMNS} FROM layer_history
             WHERE namespace = $1 AND scope_key = $2 ORDER BY revision"
        ))
        .bind(namespace.as_str())
        .bind(scope.key())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(layer_revision)
        .collect()
    }

    /// Up to `limit` revisions of a layer after revision `after` (from the
    /// first without it), oldest first, and the last one's revision when
    /// more follow: the keyset the next page starts after.
    pub async fn layer_history_page(
        &self,
        namespace: &NamespaceName,
        scope: &Scope,
        after: Option<u64>,
        limit: u32,
    ) -> sqlx::Result<HistoryPage> {
        let mut revisions = sqlx::query(&format!(
            "SELECT {LAYER_HISTORY_COLUMNS} FROM layer_history
             WHERE namespace = $1 AND scope_key = $2 AND revision > $3
             ORDER BY revision LIMIT $4"
        ))
        .bind(namespace.as_str())
        .bind(scope.key())
        .bind(after.unwrap_or(0).min(i64::MAX as u64) as i64)
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(layer_revision)
        .collect::<sqlx::Result<Vec<_>>>()?;
        let more = revisions.len() > limit as usize;
        revisions.truncate(limit as usize);
        let next = if more {
            revisions.last().map(|r| r.state.revision)
        } else {
            None
        };
        Ok(HistoryPage { revisions, next })
    }

    /// Up to `limit` layer revisions of one tenant's layers across
    /// `namespaces`, newest first (by position, then namespace and scope), and
    /// the last one's key when more follow: the keyset the next (older) page
    /// starts before.
    pub async fn tenant_history_page(
        &self,
        tenant: &TenantId,
        namespaces: &[String],
        before: Option<&TimelineKey>,
        limit: u32,
    ) -> sqlx::Result<TimelinePage> {
        let (position, namespace, scope_key) = match before {
            Some(key) => (
                key.position.min(i64::MAX as u64) as i64,
                key.namespace.as_str(),
                key.scope_key.as_str(),
            ),
            None => (i64::MAX, "", ""),
        };
        let mut revisions = sqlx::query(&format!(
            "SELECT {LAYER_HISTORY_COLUMNS} FROM layer_history
             WHERE tenant = $1 AND namespace = ANY($2)
               AND ($6 OR (position, namespace, scope_key) < ($3, $4, $5))
             ORDER BY position DESC, namespace DESC, scope_key DESC LIMIT $7"
        ))
        .bind(tenant.as_str())
        .bind(namespaces)
        .bind(position)
        .bind(namespace)
        .bind(scope_key)
        .bind(before.is_none())
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(layer_revision)
        .collect::<sqlx::Result<Vec<_>>>()?;
        let more = revisions.len() > limit as usize;
        revisions.truncate(limit as usize);
        let next = if more {
            revisions.last().map(|r| TimelineKey {
                position: r.position,
                namespace: r.state.namespace.to_string(),
                scope_key: r.state.scope.key(),
            })
        } else {
            None
        };
        Ok(TimelinePage { revisions, next })
    }

    /// The positions in `(after, upto]` at which the resolved document of
    /// `namespace` may have changed for a context naming `tenant`: writes to
    /// the namespace, to its layers and to the tenant, oldest first, at most
    /// `limit` of them.
    pub async fn change_positions(
        &self,
        namespace: &NamespaceName,
        tenant: Option<&TenantId>,
        after: u64,
        upto: u64,
        limit: u32,
    ) -> sqlx::Result<Vec<u64>> {
        let positions: Vec<i64> = sqlx::query_scalar(
            "SELECT position FROM layer_history
               WHERE namespace = $1 AND position > $2 AND position <= $3
             UNION
             SELECT position FROM namespace_history
               WHERE name = $1 AND position > $2 AND position <= $3
             UNION
             SELECT position FROM tenant_history
               WHERE id = $4 AND position > $2 AND position <= $3
             ORDER BY position LIMIT $5",
        )
        .bind(namespace.as_str())
        .bind(after.min(i64::MAX as u64) as i64)
        .bind(upto.min(i64::MAX as u64) as i64)
        .bind(tenant.map(TenantId::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(positions.into_iter().map(|p| p as u64).collect())
    }

    /// The namespace, its layers (`which` of them) and the tenant's
    /// edition as they stood at `position` (`None`: now), read in one
    /// consistent snapshot. `None` when the namespace did not exist then.
    pub async fn snapshot(
        &self,
        namespace: &NamespaceName,
        tenant: Option<&TenantId>,
        which: Layers,
        position: Option<u64>,
    ) -> sqlx::Result<Option<(NamespaceSnapshot, Option<EditionName>)>> {
        let this = self.clone();
        let namespace = namespace.clone();
        let tenant = tenant.cloned();
        crate::detached::detached(async move {
            this.read_snapshot(&namespace, tenant.as_ref(), which, position)
                .await
        })
        .await
    }

    /// [`ReadModel::snapshot`]'s transaction.
    async fn read_snapshot(
        &self,
        namespace: &NamespaceName,
        tenant: Option<&TenantId>,
        which: Layers,
        position: Option<u64>,
    ) -> sqlx::Result<Option<(NamespaceSnapshot, Option<EditionName>)>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let applied: i64 = sqlx::query_scalar(
            "SELECT coalesce((SELECT last_position FROM projection_offsets WHERE name = $1), 0)",
        )
        .bind(ProjectionName::Config.as_str())
        .fetch_one(&mut *tx)
        .await?;
        let at = position.map_or(applied, |p| (p.min(i64::MAX as u64) as i64).min(applied));
        let Some(ns_row) = sqlx::query(
            "SELECT name, kind, description, schema, approval, revision FROM namespace_history
             WHERE name = $1 AND position <= $2 ORDER BY revision DESC LIMIT 1",
        )
        .bind(namespace.as_str())
        .bind(at)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(None);
        };
        // Current state: the `layers` table, read in the same snapshot as the
        // offset, is the history at `applied`. The past: one index probe per
        // layer for its newest revision at or before `at`.
        let query = if at == applied {
            sqlx::query(
                "SELECT namespace, scope, values, lock, revision FROM layers
                 WHERE namespace = $1 AND ($3 OR tenant IS NULL OR tenant = $4)",
            )
        } else {
            sqlx::query(
                "SELECT h.namespace, h.scope, h.values, h.lock, h.revision
                 FROM layers l CROSS JOIN LATERAL (
                     SELECT namespace, scope, values, lock, revision FROM layer_history h
                     WHERE h.namespace = l.namespace AND h.scope_key = l.scope_key
                       AND h.position <= $2
                     ORDER BY h.position DESC LIMIT 1) h
                 WHERE l.namespace = $1 AND ($3 OR l.tenant IS NULL OR l.tenant = $4)",
            )
        };
        let mut layers = query
            .bind(namespace.as_str())
            .bind(at)
            .bind(which == Layers::All)
            .bind(tenant.map(TenantId::as_str))
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(layer_state)
            .collect::<sqlx::Result<Vec<_>>>()?;
        // A stable order whichever plan the database picks.
        layers.sort_by_cached_key(|layer| layer.scope.key());
        let edition = match tenant {
            None => None,
            Some(tenant) => sqlx::query_scalar::<_, String>(
                "SELECT h.edition FROM tenant_history h
                 WHERE h.id = $1 AND h.position <= $2
                   AND NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = h.id AND t.erased_at IS NOT NULL)
                 ORDER BY h.revision DESC LIMIT 1",
            )
            .bind(tenant.as_str())
            .bind(at)
            .fetch_optional(&mut *tx)
            .await?
            .map(|e| decode(Value::String(e), "edition"))
            .transpose()?,
        };
        tx.commit().await?;
        Ok(Some((
            NamespaceSnapshot {
                namespace: namespace_state(&ns_row)?,
                layers,
                position: at as u64,
            },
            edition,
        )))
    }
}

#[async_trait]
impl ConfigReader for ReadModel {
    async fn namespace(&self, name: &NamespaceName) -> Result<Option<NamespaceState>, DomainError> {
        Ok(ReadModel::namespace(self, name)
            .await
            .map_err(unavailable)?
            .map(|r| r.state))
    }

    async fn tenant(&self, id: &TenantId) -> Result<Option<TenantState>, DomainError> {
        // An erased tenant can no longer be used.
        Ok(ReadModel::tenant(self, id)
            .await
            .map_err(unavailable)?
            .map(|r| r.state)
            .filter(|t| !t.erased))
    }

    async fn layers(&self, namespace: &NamespaceName) -> Result<Vec<LayerState>, DomainError> {
        sqlx::query(
            "SELECT namespace, scope, values, lock, revision FROM layers WHERE namespace = $1",
        )
        .bind(namespace.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?
        .iter()
        .map(layer_state)
        .collect::<sqlx::Result<_>>()
        .map_err(unavailable)
    }

    async fn overlapping_layers(
        &self,
        namespace: &NamespaceName,
        scope: &Scope,
    ) -> Result<NamespaceLayers, DomainError> {
        // One query: each layer that can apply together with one at `scope`
        // (on every dimension it leaves the value open or fixes the same),
        // with the edition of the tenant it names (none for an unknown or
        // erased tenant).
        let rows = sqlx::query(
            "SELECT l.namespace, l.scope, l.values, l.lock, l.revision,
                    t.edition AS tenant_edition
             FROM layers l
             LEFT JOIN tenants t ON t.id = l.tenant AND t.erased_at IS NULL
             WHERE l.namespace = $1
               AND ($2::text IS NULL OR l.env IS NULL OR l.env = $2)
               AND ($3::text IS NULL OR l.service IS NULL OR l.service = $3)
               AND ($4::text IS NULL OR l.tenant IS NULL OR l.tenant = $4)
               AND ($5::text IS NULL OR l.edition IS NULL OR l.edition = $5)",
        )
        .bind(namespace.as_str())
        .bind(scope.env.as_ref().map(|v| v.as_str()))
        .bind(scope.service.as_ref().map(|v| v.as_str()))
        .bind(scope.tenant.as_ref().map(|v| v.as_str()))
        .bind(scope.edition.as_ref().map(|v| v.as_str()))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        let mut found = NamespaceLayers::default();
        for row in &rows {
            let layer = layer_state(row).map_err(unavailable)?;
            let edition: Option<String> = row.try_get("tenant_edition").map_err(unavailable)?;
            if let (Some(tenant), Some(edition)) = (&layer.scope.tenant, edition)
                && !found.editions.contains_key(tenant)
            {
                let edition = decode(Value::String(edition), "edition").map_err(unavailable)?;
                found.editions.insert(tenant.clone(), edition);
            }
            found.layers.push(layer);
        }
        Ok(found)
    }

    async fn layer_revision(
        &self,
        namespace: &NamespaceName,
        scope: &Scope,
        revision: u64,
    ) -> Result<Option<LayerState>, DomainError> {
        sqlx::query(
            "SELECT namespace, scope, values, lock, revision FROM layer_history
             WHERE namespace = $1 AND scope_key = $2 AND revision = $3",
        )
        .bind(namespace.as_str())
        .bind(scope.key())
        .bind(revision as i64)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?
        .map(|row| layer_state(&row))
        .transpose()
        .map_err(unavailable)
    }
}

/// An issued token as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    #[serde(flatten)]
    pub role: ecs_domain::Role,
    #[serde(skip)]
    pub secret_hash: String,
    /// Unix seconds.
    pub expires_at: Option<i64>,
    pub issued_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// Who holds the key: the root of its issuing chain (see
    /// `ecs_domain::Identity`).
    pub identity: ecs_domain::Identity,
}

fn token_row(row: &PgRow) -> sqlx::Result<TokenRow> {
    Ok(TokenRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: decode(row.try_get::<Json<Value>, _>("role")?.0, "role")?,
        secret_hash: row.try_get("secret_hash")?,
        expires_at: row.try_get("expires_at")?,
        issued_by: row.try_get("issued_by")?,
        issued_at: row.try_get("issued_at")?,
        revoked_at: row.try_get("revoked_at")?,
        identity: match row.try_get::<Option<String>, _>("identity")? {
            Some(identity) => ecs_domain::Identity::new(identity),
            None => ecs_domain::Identity::new(format!("token:{}", row.try_get::<String, _>("id")?)),
        },
    })
}

impl ReadModel {
    pub async fn token(&self, id: &str) -> sqlx::Result<Option<TokenRow>> {
        sqlx::query("SELECT * FROM tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| token_row(&row))
            .transpose()
    }

    /// Tokens, all or of one tenant, newest first.
    pub async fn tokens(&self, tenant: Option<&TenantId>) -> sqlx::Result<Vec<TokenRow>> {
        sqlx::query("SELECT * FROM tokens WHERE $1::text IS NULL OR tenant = $1 ORDER BY issued_at DESC, id")
            .bind(tenant.map(|t| t.as_str()))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(token_row)
            .collect()
    }
}

impl ReadModel {
    /// A usable tenant's edition as of `position` (`None`: unknown or erased).
    pub async fn edition_at(
        &self,
        tenant: &TenantId,
        position: u64,
    ) -> sqlx::Result<Option<EditionName>> {
        let edition: Option<String> = sqlx::query_scalar(
            "SELECT h.edition FROM tenant_history h
             WHERE h.id = $1 AND h.position <= $2
               AND NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = h.id AND t.erased_at IS NOT NULL)
             ORDER BY h.revision DESC LIMIT 1",
        )
        .bind(tenant.as_str())
        .bind(position.min(i64::MAX as u64) as i64)
        .fetch_optional(&self.pool)
        .await?;
        edition
            .map(|e| decode(Value::String(e), "edition"))
            .transpose()
    }
}
