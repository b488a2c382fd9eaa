//! Roles and what each may do: the authorization rules, as pure functions.
//!
//! A [`Role`] is bound to a scope when it is granted (a tenant, a set of
//! namespaces, an env and service). Every decision answers [`Decision`]: allowed,
//! forbidden (the caller may know the resource exists but may not act on it:
//! 403), or hidden (the caller may not know it exists: 404).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::ids::{EnvName, NamespaceName, ServiceName, TenantId};
use crate::scope::Scope;

/// A role bound to its scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Role {
    /// Everything, platform-wide.
    Admin,
    /// Layers whose scope names the tenant, the tenant's resolved
    /// configuration and the tenant's tokens.
    TenantAdmin { tenant: TenantId },
    /// Reads and writes layers of some namespaces, optionally of one tenant.
    Editor {
        namespaces: BTreeSet<NamespaceName>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tenant: Option<TenantId>,
    },
    /// Reads layers of some namespaces, optionally of one tenant.
    Viewer {
        namespaces: BTreeSet<NamespaceName>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tenant: Option<TenantId>,
    },
    /// A running service: reads resolved configuration for its env and
    /// service, and watches it.
    Service { env: EnvName, service: ServiceName },
    /// Reads everything, including the audit log; writes nothing.
    Auditor,
}

/// The outcome of an authorization check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// 403: the caller may see the resource but not take this action.
    Forbidden,
    /// 404: the caller may not know the resource exists.
    Hidden,
}

/// Which tenants a role may know exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisibleTenants<'a> {
    All,
    /// Only the tenant the role is bound to.
    One(&'a TenantId),
    None,
}

impl Decision {
    fn from(allowed: bool, otherwise: Decision) -> Decision {
        if allowed { Decision::Allow } else { otherwise }
    }
}

impl Role {
    /// The role's name as the API spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::TenantAdmin { .. } => "tenant-admin",
            Role::Editor { .. } => "editor",
            Role::Viewer { .. } => "viewer",
            Role::Service { .. } => "service",
            Role::Auditor => "auditor",
        }
    }

    /// The single tenant this role is confined to, if any.
    pub fn tenant(&self) -> Option<&TenantId> {
        match self {
            Role::TenantAdmin { tenant } => Some(tenant),
            Role::Editor { tenant, .. } | Role::Viewer { tenant, .. } => tenant.as_ref(),
            _ => None,
        }
    }

    fn namespaces(&self) -> Option<&BTreeSet<NamespaceName>> {
        match self {
            Role::Editor { namespaces, .. } | Role::Viewer { namespaces, .. } => Some(namespaces),
            _ => None,
        }
    }

    /// Whether the caller may know the namespace exists.
    pub fn sees_namespace(&self, namespace: &NamespaceName) -> bool {
        match self.namespaces() {
            Some(namespaces) => namespaces.contains(namespace),
            None => true,
        }
    }

    /// Which tenants the caller may know exist (list, read, see named).
    pub fn tenants(&self) -> VisibleTenants<'_> {
        match self {
            Role::Admin | Role::Auditor => VisibleTenants::All,
            // A service is bound to an env and a service, not to tenants: it
            // resolves any tenant's context it is asked for, but has no
            // business listing who the customers are.
            Role::Service { .. } => VisibleTenants::None,
            _ => self
                .tenant()
                .map_or(VisibleTenants::All, VisibleTenants::One),
        }
    }

    /// Whether the caller may know the tenant exists.
    pub fn sees_tenant(&self, tenant: &TenantId) -> bool {
        match self.tenants() {
            VisibleTenants::All => true,
            VisibleTenants::One(own) => own == tenant,
            VisibleTenants::None => false,
        }
    }

    /// Whether a layer at `scope` lies within the role's tenant (if confined).
    fn tenant_allows(&self, scope: &Scope) -> bool {
        match self.tenant() {
            None => true,
            Some(tenant) => scope.tenant.as_ref() == Some(tenant),
        }
    }

    /// Defining namespaces and tenants, rebuilding projections.
    pub fn administer(&self) -> Decision {
        Decision::from(matches!(self, Role::Admin), Decision::Forbidden)
    }

    /// Reading the namespace's definition and schema.
    pub fn read_namespace(&self, namespace: &NamespaceName) -> Decision {
        Decision::from(self.sees_namespace(namespace), Decision::Hidden)
    }

    /// Reading a tenant.
    pub fn read_tenant(&self, tenant: &TenantId) -> Decision {
        Decision::from(self.sees_tenant(tenant), Decision::Hidden)
    }

    /// Reading a layer (current, past or its history).
    pub fn read_layer(&self, namespace: &NamespaceName, scope: &Scope) -> Decision {
        if !self.sees_namespace(namespace) {
            return Decision::Hidden;
        }
        match self {
            Role::Admin | Role::Auditor => Decision::Allow,
            Role::Service { .. } => Decision::Forbidden,
            _ => Decision::from(self.tenant_allows(scope), Decision::Hidden),
        }
    }

    /// Writing a layer (set, patch, clear, roll back).
    pub fn write_layer(&self, namespace: &NamespaceName, scope: &Scope) -> Decision {
        match self.read_layer(namespace, scope) {
            Decision::Allow => {}
            other => return other,
        }
        Decision::from(self.writes_layers(), Decision::Forbidden)
    }

    /// Whether the role writes layers anywhere at all (within its scope).
    pub fn writes_layers(&self) -> bool {
        matches!(
            self,
            Role::Admin | Role::TenantAdmin { .. } | Role::Editor { .. }
        )
    }

    /// Reading the resolved configuration for a context (and watching it).
    pub fn read_resolved(&self, namespace: &NamespaceName, context: &Scope) -> Decision {
        if !self.sees_namespace(namespace) {
            return Decision::Hidden;
        }
        match self {
            Role::Admin | Role::Auditor => Decision::Allow,
            Role::Service { env, service } => Decision::from(
                context.env.as_ref() == Some(env) && context.service.as_ref() == Some(service),
                Decision::Forbidden,
            ),
            _ => match self.tenant() {
                None => Decision::Allow,
                Some(tenant) => match &context.tenant {
                    Some(t) if t == tenant => Decision::Allow,
                    Some(_) => Decision::Hidden,
                    None => Decision::Forbidden,
                },
            },
        }
    }

    /// Following the raw change feed (every tenant's layers of a namespace).
    pub fn read_feed(&self, namespace: &NamespaceName) -> Decision {
        if !self.sees_namespace(namespace) {
            return Decision::Hidden;
        }
        Decision::from(
            matches!(self, Role::Admin | Role::Auditor | Role::Service { .. }),
            Decision::Forbidden,
        )
    }

    /// Issuing, listing and revoking tokens: admins for anyone, tenant admins
    /// for their tenant's tokens.
    pub fn manage_tokens(&self, tenant: Option<&TenantId>) -> Decision {
        match self {
            Role::Admin => Decision::Allow,
            Role::TenantAdmin { tenant: own } => {
                Decision::from(tenant == Some(own), Decision::Forbidden)
            }
            _ => Decision::Forbidden,
        }
    }

    /// Revoking a token bound to `tenant`: a tenant admin may not know other
    /// tenants' tokens exist.
    pub fn revoke_token(&self, tenant: Option<&TenantId>) -> Decision {
        match self {
            Role::Admin => Decision::Allow,
            Role::TenantAdmin { tenant: own } => {
                Decision::from(tenant == Some(own), Decision::Hidden)
            }
            _ => Decision::Forbidden,
        }
    }

    /// Whether the role manages any tokens at all.
    pub fn manages_tokens(&self) -> bool {
        matches!(self, Role::Admin | Role::TenantAdmin { .. })
    }

    /// Parses a role from a JWT claim, refusing fields the role does not take
    /// (serde would silently drop them for `admin` and `auditor`).
    pub fn from_claim(claim: &serde_json::Value) -> Result<Role, String> {
        let role: Role = serde_json::from_value(claim.clone()).map_err(|e| e.to_string())?;
        let allowed: &[&str] = match role {
            Role::Admin | Role::Auditor => &["role"],
            Role::TenantAdmin { .. } => &["role", "tenant"],
            Role::Editor { .. } | Role::Viewer { .. } => &["role", "namespaces", "tenant"],
            Role::Service { .. } => &["role", "env", "service"],
        };
        match claim
            .as_object()
            .and_then(|o| o.keys().find(|k| !allowed.contains(&k.as_str())))
        {
            Some(extra) => Err(format!(
                "{extra} does not apply to the {} role",
                role.name()
            )),
            None => Ok(role),
        }
    }

    /// Whether this role may grant `other` (no one grants more than they hold).
    pub fn may_grant(&self, other: &Role) -> bool {
        match self {
            Role::Admin => true,
            Role::TenantAdmin { tenant } => match other {
                Role::TenantAdmin { tenant: t } => t == tenant,
                Role::Editor {
                    tenant: Some(t), ..
                }
                | Role::Viewer {
                    tenant: Some(t), ..
                } => t == tenant,
                _ => false,
            },
            _ => false,
        }
    }

    /// Exporting everything held about a tenant.
    pub fn export_tenant(&self, tenant: &TenantId) -> Decision {
        match self {
            Role::Admin | Role::Auditor => Decision::Allow,
            Role::TenantAdmin { tenant: own } if own == tenant => Decision::Allow,
            _ if !self.sees_tenant(tenant) => Decision::Hidden,
            _ => Decision::Forbidden,
        }
    }

    /// Whether the role may read values the namespace's schema marks
    /// sensitive (`writeOnly` or `x-sensitive`) in layers, history and the
    /// audit log; others read them masked. A service reads its resolved
    /// configuration unmasked regardless: it needs it to run.
    pub fn reads_sensitive(&self) -> bool {
        matches!(
            self,
            Role::Admin | Role::TenantAdmin { .. } | Role::Editor { .. }
        )
    }

    /// Reading the audit log.
    pub fn read_audit(&self) -> Decision {
        Decision::from(
            matches!(self, Role::Admin | Role::Auditor),
            Decision::Forbidden,
        )
    }
}
