//! Scopes: the subset of dimensions a layer fixes.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::dimension::Dimension;
use crate::ids::{EditionName, EnvName, IdError, ServiceName, TenantId};

/// The scope of a layer. `Scope::default()` is the global layer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<EnvName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<TenantId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edition: Option<EditionName>,
}

impl Scope {
    pub fn global() -> Self {
        Scope::default()
    }

    /// A scope (or context) from `(dimension, value)` pairs such as
    /// `("tenant", "acme")`.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Scope, IdError> {
        let mut scope = Scope::default();
        for (dimension, value) in pairs {
            match dimension {
                "env" => scope.env = Some(EnvName::parse(value)?),
                "service" => scope.service = Some(ServiceName::parse(value)?),
                "tenant" => scope.tenant = Some(TenantId::parse(value)?),
                "edition" => scope.edition = Some(EditionName::parse(value)?),
                _ => {
                    return Err(IdError {
                        field: "dimension",
                        value: dimension.to_owned(),
                        reason: "must be env, service, tenant or edition",
                    });
                }
            }
        }
        Ok(scope)
    }

    pub fn is_global(&self) -> bool {
        *self == Scope::default()
    }

    /// The value this scope fixes for a dimension.
    pub fn get(&self, dimension: Dimension) -> Option<&str> {
        match dimension {
            Dimension::Env => self.env.as_ref().map(EnvName::as_str),
            Dimension::Service => self.service.as_ref().map(ServiceName::as_str),
            Dimension::Tenant => self.tenant.as_ref().map(TenantId::as_str),
            Dimension::Edition => self.edition.as_ref().map(EditionName::as_str),
        }
    }

    pub fn fixes(&self, dimension: Dimension) -> bool {
        self.get(dimension).is_some()
    }

    /// Whether every dimension this scope fixes is fixed to the same value by
    /// `other`: a layer at `self` then applies wherever a layer at `other` does.
    pub fn is_within(&self, other: &Scope) -> bool {
        Dimension::ALL
            .into_iter()
            .all(|d| self.get(d).is_none() || self.get(d) == other.get(d))
    }

    /// Whether some context exists to which layers at both scopes apply.
    pub fn overlaps(&self, other: &Scope) -> bool {
        Dimension::ALL
            .into_iter()
            .all(|d| match (self.get(d), other.get(d)) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            })
    }

    /// A canonical text key, `""` for the global scope, else
    /// `env=prod,tenant=acme` in dimension order. Used as a database key.
    pub fn key(&self) -> String {
        Dimension::ALL
            .into_iter()
            .filter_map(|d| self.get(d).map(|v| format!("{}={v}", d.name())))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The dot-separated subject tokens `env.service.tenant.edition`, with `_`
    /// for a dimension the scope leaves open (identifiers never equal `_`).
    pub fn subject_tokens(&self) -> String {
        Dimension::ALL
            .into_iter()
            .map(|d| self.get(d).unwrap_or("_"))
            .collect::<Vec<_>>()
            .join(".")
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_global() {
            f.write_str("global")
        } else {
            f.write_str(&self.key())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(env: Option<&str>, tenant: Option<&str>) -> Scope {
        Scope {
            env: env.map(|e| EnvName::parse(e).unwrap()),
            tenant: tenant.map(|t| TenantId::parse(t).unwrap()),
            ..Scope::default()
        }
    }

    #[test]
    fn keys_and_tokens() {
        let s = scope(Some("prod"), Some("acme"));
        assert_eq!(s.key(), "env=prod,tenant=acme");
        assert_eq!(s.subject_tokens(), "prod._.acme._");
        assert_eq!(Scope::global().key(), "");
        assert_eq!(Scope::global().to_string(), "global");
    }

    #[test]
    fn within_and_overlap() {
        let g = Scope::global();
        let prod = scope(Some("prod"), None);
        let acme = scope(None, Some("acme"));
        let prod_acme = scope(Some("prod"), Some("acme"));
        let dev = scope(Some("dev"), None);
        assert!(g.is_within(&prod_acme));
        assert!(prod.is_within(&prod_acme));
        assert!(!prod_acme.is_within(&prod));
        assert!(prod.overlaps(&acme));
        assert!(!prod.overlaps(&dev));
    }
}
