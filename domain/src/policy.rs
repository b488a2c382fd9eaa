//! Where a namespace requires approval.

use serde::{Deserialize, Serialize};

use crate::scope::Scope;

/// Where a namespace requires approval: writes to a layer that can change a
/// resolved document inside one of `scopes`; an empty list means every layer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalPolicy {
    #[serde(default)]
    pub scopes: Vec<Scope>,
}

impl ApprovalPolicy {
    /// Whether a write to a layer at `scope` needs approval: whether the
    /// layer applies to some context inside a policy scope. That is every
    /// layer within the policy scope (`{env: prod, tenant: acme}` under
    /// `{env: prod}`), every stronger layer that overrides it there
    /// (`{tenant: acme}` applies to prod for acme) and every weaker one whose
    /// values show through it (`global`); only a layer fixing a dimension to
    /// another value (`{env: dev}`) never reaches inside.
    pub fn covers(&self, scope: &Scope) -> bool {
        self.scopes.is_empty() || self.scopes.iter().any(|p| p.overlaps(scope))
    }
}
