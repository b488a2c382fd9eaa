//! Reads of everything held about one tenant, for its export.

use ecs_domain::TenantId;
use serde_json::Value;

use crate::ReadModel;

/// The rows of `query` (one `$1` tenant parameter) as JSON objects.
async fn rows(model: &ReadModel, query: &str, tenant: &TenantId) -> sqlx::Result<Vec<Value>> {
    sqlx::query_scalar::<_, Value>(query)
        .bind(tenant.as_str())
        .fetch_all(model.pool())
        .await
}

impl ReadModel {
    /// Every projection row that concerns the tenant, by section.
    pub async fn tenant_export(
        &self,
        tenant: &TenantId,
    ) -> sqlx::Result<serde_json::Map<String, Value>> {
        let sections = [
            ("tenant", "SELECT to_jsonb(t) FROM tenants t WHERE id = $1"),
            (
                "tenant_history",
                "SELECT to_jsonb(t) FROM tenant_history t WHERE id = $1 ORDER BY revision",
            ),
            (
                "layers",
                "SELECT to_jsonb(l) - 'env' - 'service' - 'edition' FROM layers l WHERE tenant = $1
                 ORDER BY namespace, scope_key",
            ),
            (
                "layer_history",
                "SELECT to_jsonb(h) FROM layer_history h WHERE tenant = $1 ORDER BY namespace, scope_key, revision",
            ),
            (
                "change_requests",
                "SELECT to_jsonb(c) FROM change_requests c WHERE tenant = $1 ORDER BY opened_at",
            ),
            (
                "tokens",
                "SELECT to_jsonb(k) - 'secret_hash' FROM tokens k WHERE tenant = $1 ORDER BY issued_at",
            ),
        ];
        let mut out = serde_json::Map::new();
        for (name, query) in sections {
            out.insert(
                name.to_owned(),
                Value::Array(rows(self, query, tenant).await?),
            );
        }
        Ok(out)
    }
}

impl ReadModel {
    /// Every audit entry naming the tenant, oldest first.
    pub async fn audit_of_tenant(&self, tenant: &TenantId) -> sqlx::Result<Vec<Value>> {
        rows(
            self,
            "SELECT to_jsonb(a) FROM audit a WHERE tenant = $1 ORDER BY at, key",
            tenant,
        )
        .await
    }
}

impl ReadModel {
    /// The tenants erased after `after`, with the position of each erasure,
    /// in position order: what a reader of the feed over HTTP must forget.
    pub async fn tenants_erased_since(&self, after: u64) -> sqlx::Result<Vec<(TenantId, u64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT id, erased_position FROM tenants WHERE erased_position > $1
             ORDER BY erased_position",
        )
        .bind(after as i64)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|(id, position)| {
                TenantId::parse(id)
                    .map(|id| (id, position as u64))
                    .map_err(|e| sqlx::Error::Decode(Box::new(e)))
            })
            .collect()
    }
}
