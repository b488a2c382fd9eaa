//! Aggregate ids carry the tenant their subject is filed under; the tenant
//! read back from an id is the one it was made with, for every scope.

#![allow(clippy::unwrap_used)]

use ecs_domain::change_request::{aggregate_id, aggregate_id_tenant};
use ecs_domain::layer::{layer_id, layer_id_tenant};
use ecs_domain::{NamespaceName, Scope};

fn scopes() -> Vec<Scope> {
    let dims = ["env", "service", "tenant", "edition"];
    let values = ["prod", "billing", "acme", "enterprise"];
    // Every subset of the four dimensions.
    (0..16u8)
        .map(|mask| {
            let pairs = (0..4)
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| (dims[i], values[i]));
            Scope::from_pairs(pairs).unwrap()
        })
        .collect()
}

#[test]
fn a_layer_id_gives_back_its_tenant() {
    let ns = NamespaceName::parse("checkout").unwrap();
    for scope in scopes() {
        let expected = scope.tenant.as_ref().map_or("_", |t| t.as_str());
        assert_eq!(layer_id_tenant(&layer_id(&ns, &scope)), expected, "{scope}");
    }
}

#[test]
fn a_change_request_id_gives_back_its_tenant() {
    for scope in scopes() {
        let expected = scope.tenant.as_ref().map_or("_", |t| t.as_str());
        let id = aggregate_id("0f3c9a1b2c3d4e5f", &scope);
        assert_eq!(aggregate_id_tenant(&id), expected, "{scope}");
    }
}
