//! Refused attempts hold tenant data too (the reason, request ids): they are
//! sealed with the tenant's key before they reach the audit stream, so an
//! erasure leaves them unreadable there as well.

use ecs_domain::TenantId;
use ecs_domain::audit::AuditRecord;

use crate::auth::Principal;
use crate::state::AppState;

impl AppState {
    /// Seals a refused attempt's tenant data with the key of the tenant it
    /// belongs to: the caller's own tenant when its role is bound to one,
    /// else the tenant the request names. Should sealing fail, the record
    /// keeps none of that data rather than hold it in clear.
    pub(crate) async fn seal_refusal(
        &self,
        mut record: AuditRecord,
        principal: Option<&Principal>,
    ) -> AuditRecord {
        let owner = principal
            .and_then(|p| p.role.tenant().cloned())
            .or_else(|| {
                record
                    .tenant
                    .as_deref()
                    .and_then(|t| TenantId::parse(t).ok())
            });
        if let Some(tenant) = owner
            && let Err(error) = self.keyring.seal_record(&mut record, &tenant).await
        {
            tracing::warn!(%error, "cannot seal a refusal's tenant data; recording it without");
        }
        record
    }
}
