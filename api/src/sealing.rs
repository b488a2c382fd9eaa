//! Records of the audit stream hold tenant data too (a refusal's reason,
//! request ids, a rollout plan's steps): they are sealed with the tenant's
//! key before they reach the audit stream, so an erasure leaves them
//! unreadable there as well.

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
        record: AuditRecord,
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
        self.seal_record_for(record, owner.as_ref()).await
    }

    /// Seals a record's tenant data with `owner`'s key (nothing to seal
    /// without an owner). Should sealing fail, the record keeps none of that
    /// data rather than hold it in clear.
    pub(crate) async fn seal_record_for(
        &self,
        mut record: AuditRecord,
        owner: Option<&TenantId>,
    ) -> AuditRecord {
        if let Some(tenant) = owner
            && let Err(error) = self.keyring.seal_record(&mut record, tenant).await
        {
            tracing::warn!(%error, "cannot seal an audit record's tenant data; recording it without");
        }
        record
    }
}
