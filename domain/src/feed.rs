//! The public change feed: the versioned message format services read.
//!
//! Internal events may change; this format changes only by adding fields.
//! See `docs/feed.md`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{EditionName, NamespaceName, TenantId};
use crate::scope::Scope;
use crate::state::NamespaceKind;

/// The feed format version.
pub const FEED_VERSION: u32 = 1;

/// The key-value bucket that holds the feed: the latest message per item.
pub const FEED_BUCKET: &str = "ecs-feed";

/// One feed message: the complete current state of one item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedMessage {
    /// The format version (1).
    pub v: u32,
    /// The global position (events stream sequence) of the change.
    pub position: u64,
    /// When the change was accepted (RFC 3339).
    pub at: String,
    #[serde(flatten)]
    pub item: FeedItem,
    /// The W3C trace context of the change, when it was traced: a reader
    /// continues that trace when it applies the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// What changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum FeedItem {
    Namespace {
        namespace: NamespaceName,
        revision: u64,
        /// Absent for configuration namespaces (and in older messages).
        /// Not `kind`, which tags the item.
        #[serde(default, skip_serializing_if = "NamespaceKind::is_config")]
        namespace_kind: NamespaceKind,
        #[serde(default)]
        description: String,
        #[serde(default)]
        schema: Option<Value>,
    },
    Tenant {
        tenant: TenantId,
        revision: u64,
        edition: EditionName,
        #[serde(default)]
        name: Option<String>,
    },
    Layer {
        namespace: NamespaceName,
        scope: Scope,
        revision: u64,
        values: Value,
        #[serde(default)]
        lock: Vec<String>,
    },
}

impl FeedItem {
    /// The item's key in the feed bucket. Keys carry the namespace and the
    /// tenant so readers and NATS permissions can filter by either:
    /// `namespace.<ns>`, `tenant.<tenant>`,
    /// `layer.<ns>.<tenant>.<env>.<service>.<edition>` (`_` for open dimensions).
    pub fn key(&self) -> String {
        match self {
            FeedItem::Namespace { namespace, .. } => format!("namespace.{namespace}"),
            FeedItem::Tenant { tenant, .. } => format!("tenant.{tenant}"),
            FeedItem::Layer {
                namespace, scope, ..
            } => {
                let open = |v: Option<&str>| v.unwrap_or(OPEN).to_owned();
                format!(
                    "layer.{namespace}.{}.{}.{}.{}",
                    open(scope.tenant.as_ref().map(TenantId::as_str)),
                    open(scope.env.as_ref().map(|e| e.as_str())),
                    open(scope.service.as_ref().map(|s| s.as_str())),
                    open(scope.edition.as_ref().map(|e| e.as_str())),
                )
            }
        }
    }
}

/// The key filters that select everything one namespace's resolution needs:
/// its definition, its layers and every tenant (for their editions). With
/// `tenants` given, only those tenants' layers and items plus the tenant-free
/// layers: what a reader limited to those tenants may read
/// ([`tenant_reader_keys`]), each filter within one of its patterns.
pub fn namespace_filters(namespace: &NamespaceName, tenants: &[TenantId]) -> Vec<String> {
    if tenants.is_empty() {
        return vec![
            format!("namespace.{namespace}"),
            format!("layer.{namespace}.>"),
            "tenant.>".to_owned(),
        ];
    }
    let mut filters = vec![
        format!("namespace.{namespace}"),
        format!("layer.{namespace}.{OPEN}.>"),
    ];
    for tenant in tenants {
        filters.push(format!("layer.{namespace}.{tenant}.>"));
        filters.push(format!("tenant.{tenant}"));
    }
    filters
}

/// The token of a scope dimension a layer leaves open.
pub const OPEN: &str = "_";

/// The key patterns a feed reader of one tenant may read: every namespace, its
/// own tenant item, its own layers and the tenant-free layers of every
/// namespace. Other tenants' layers and items stay out of reach; the NATS
/// permissions of a tenant's feed credential are cut along these patterns.
pub fn tenant_reader_keys(tenant: &TenantId) -> Vec<String> {
    vec![
        "namespace.>".to_owned(),
        format!("tenant.{tenant}"),
        format!("layer.*.{tenant}.>"),
        format!("layer.*.{OPEN}.>"),
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Whether every subject `filter` matches also matches `pattern`.
    fn within(filter: &str, pattern: &str) -> bool {
        let (f, p): (Vec<&str>, Vec<&str>) =
            (filter.split('.').collect(), pattern.split('.').collect());
        for (i, token) in p.iter().enumerate() {
            match *token {
                ">" => return f.len() > i,
                "*" if f.get(i).is_some_and(|t| *t != ">") => {}
                literal if f.get(i) == Some(&literal) => {}
                _ => return false,
            }
        }
        f.len() == p.len()
    }

    #[test]
    fn the_wire_format_is_stable() {
        let message = FeedMessage {
            v: 1,
            position: 42,
            at: "2026-11-28T10:00:00Z".into(),
            item: FeedItem::Layer {
                namespace: NamespaceName::parse("checkout").unwrap(),
                scope: Scope {
                    tenant: Some(TenantId::parse("acme").unwrap()),
                    ..Scope::default()
                },
                revision: 3,
                values: json!({"a": 1}),
                lock: vec![],
            },
            traceparent: None,
        };
        let wire = serde_json::to_value(&message).unwrap();
        assert_eq!(
            wire,
            json!({"v": 1, "position": 42, "at": "2026-11-28T10:00:00Z", "kind": "layer",
                   "namespace": "checkout", "scope": {"tenant": "acme"}, "revision": 3,
                   "values": {"a": 1}, "lock": []})
        );
        assert_eq!(message.item.key(), "layer.checkout.acme._._._");
        // A tenant's reader filters within the keys it may read.
        let acme = TenantId::parse("acme").unwrap();
        let allowed = tenant_reader_keys(&acme);
        for filter in namespace_filters(&NamespaceName::parse("checkout").unwrap(), &[acme]) {
            assert!(
                allowed.iter().any(|p| within(&filter, p)),
                "{filter} is outside {allowed:?}"
            );
        }
        // Readers ignore fields added later.
        let mut newer = wire.clone();
        newer["added_later"] = json!(true);
        assert_eq!(
            serde_json::from_value::<FeedMessage>(newer).unwrap(),
            message
        );
    }
}
