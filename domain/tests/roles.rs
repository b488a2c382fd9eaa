//! The authorization rules of `Role`, method by method, for every role: admin,
//! tenant-admin of acme, editor and viewer of {checkout} with and without the
//! tenant acme, service prod/api and auditor. Also: no one grants a role that
//! may do more than they may, and the roles' JSON form (the JWT claim
//! `ecs_role` and the token store use it).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use ecs_domain::{Decision, EnvName, NamespaceName, Role, Scope, ServiceName, TenantId};
use serde_json::json;

use Decision::{Allow, Forbidden, Hidden};

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

fn ns(name: &str) -> NamespaceName {
    NamespaceName::parse(name).unwrap()
}

fn tenant(id: &str) -> TenantId {
    TenantId::parse(id).unwrap()
}

fn namespaces(names: &[&str]) -> BTreeSet<NamespaceName> {
    names.iter().map(|n| ns(n)).collect()
}

fn scope(pairs: &[(&str, &str)]) -> Scope {
    Scope::from_pairs(pairs.iter().copied()).unwrap()
}

fn admin() -> Role {
    Role::Admin
}
fn tenant_admin(t: &str) -> Role {
    Role::TenantAdmin { tenant: tenant(t) }
}
fn editor(names: &[&str], t: Option<&str>) -> Role {
    Role::Editor {
        namespaces: namespaces(names),
        tenant: t.map(tenant),
    }
}
fn viewer(names: &[&str], t: Option<&str>) -> Role {
    Role::Viewer {
        namespaces: namespaces(names),
        tenant: t.map(tenant),
    }
}
fn service(env: &str, svc: &str) -> Role {
    Role::Service {
        env: EnvName::parse(env).unwrap(),
        service: ServiceName::parse(svc).unwrap(),
    }
}
fn auditor() -> Role {
    Role::Auditor
}

/// The roles under test, by a short label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum R {
    Admin,
    TenantAdmin,
    Editor,
    EditorAcme,
    Viewer,
    ViewerAcme,
    Service,
    Auditor,
}

const ALL: [R; 8] = [
    R::Admin,
    R::TenantAdmin,
    R::Editor,
    R::EditorAcme,
    R::Viewer,
    R::ViewerAcme,
    R::Service,
    R::Auditor,
];

impl R {
    fn role(self) -> Role {
        match self {
            R::Admin => admin(),
            R::TenantAdmin => tenant_admin("acme"),
            R::Editor => editor(&["checkout"], None),
            R::EditorAcme => editor(&["checkout"], Some("acme")),
            R::Viewer => viewer(&["checkout"], None),
            R::ViewerAcme => viewer(&["checkout"], Some("acme")),
            R::Service => service("prod", "api"),
            R::Auditor => auditor(),
        }
    }
}

/// Named scopes used as layer scopes and as request contexts.
fn scopes() -> Vec<(&'static str, Scope)> {
    vec![
        ("global", Scope::global()),
        ("tenant=acme", scope(&[("tenant", "acme")])),
        ("tenant=globex", scope(&[("tenant", "globex")])),
        ("env=prod", scope(&[("env", "prod")])),
        ("service=api", scope(&[("service", "api")])),
        (
            "env=prod&service=api",
            scope(&[("env", "prod"), ("service", "api")]),
        ),
        (
            "env=prod&service=web",
            scope(&[("env", "prod"), ("service", "web")]),
        ),
        (
            "env=dev&service=api",
            scope(&[("env", "dev"), ("service", "api")]),
        ),
        (
            "env=prod&tenant=acme",
            scope(&[("env", "prod"), ("tenant", "acme")]),
        ),
        (
            "env=prod&service=api&tenant=acme",
            scope(&[("env", "prod"), ("service", "api"), ("tenant", "acme")]),
        ),
        (
            "env=prod&service=api&tenant=globex",
            scope(&[("env", "prod"), ("service", "api"), ("tenant", "globex")]),
        ),
        ("edition=pro", scope(&[("edition", "pro")])),
        (
            "tenant=acme&edition=pro",
            scope(&[("tenant", "acme"), ("edition", "pro")]),
        ),
    ]
}

fn names_acme(s: &Scope) -> bool {
    s.tenant.as_ref().is_some_and(|t| t.as_str() == "acme")
}

/// Collects every mismatch so one failure lists them all.
#[derive(Default)]
struct Mismatches(Vec<String>);

impl Mismatches {
    fn check<T: PartialEq + std::fmt::Debug>(&mut self, what: String, actual: T, expected: T) {
        if actual != expected {
            self.0
                .push(format!("{what}: got {actual:?}, expected {expected:?}"));
        }
    }

    #[track_caller]
    fn assert_none(self) {
        assert!(
            self.0.is_empty(),
            "{} mismatches:\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}

// ---------------------------------------------------------------------------
// Simple properties
// ---------------------------------------------------------------------------

#[test]
fn name_is_the_api_spelling() {
    let mut m = Mismatches::default();
    for r in ALL {
        let expected = match r {
            R::Admin => "admin",
            R::TenantAdmin => "tenant-admin",
            R::Editor | R::EditorAcme => "editor",
            R::Viewer | R::ViewerAcme => "viewer",
            R::Service => "service",
            R::Auditor => "auditor",
        };
        m.check(format!("{r:?}.name()"), r.role().name(), expected);
    }
    m.assert_none();
}

#[test]
fn tenant_is_the_one_tenant_a_role_is_confined_to() {
    let mut m = Mismatches::default();
    let acme = tenant("acme");
    for r in ALL {
        let expected = match r {
            R::TenantAdmin | R::EditorAcme | R::ViewerAcme => Some(&acme),
            _ => None,
        };
        m.check(format!("{r:?}.tenant()"), r.role().tenant(), expected);
    }
    m.assert_none();
}

#[test]
fn sees_namespace_only_the_granted_namespaces_for_editors_and_viewers() {
    let mut m = Mismatches::default();
    for r in ALL {
        for name in ["checkout", "billing", "nonexistent"] {
            let expected = match r {
                R::Editor | R::EditorAcme | R::Viewer | R::ViewerAcme => name == "checkout",
                _ => true,
            };
            let role = r.role();
            m.check(
                format!("{r:?}.sees_namespace({name})"),
                role.sees_namespace(&ns(name)),
                expected,
            );
            m.check(
                format!("{r:?}.read_namespace({name})"),
                role.read_namespace(&ns(name)),
                if expected { Allow } else { Hidden },
            );
        }
    }
    m.assert_none();
}

#[test]
fn sees_tenant_only_its_own_when_confined_and_none_as_a_service() {
    let mut m = Mismatches::default();
    for r in ALL {
        for t in ["acme", "globex"] {
            let expected = match r {
                R::TenantAdmin | R::EditorAcme | R::ViewerAcme => t == "acme",
                // A service is bound to an env and a service, not to tenants.
                R::Service => false,
                _ => true,
            };
            let role = r.role();
            m.check(
                format!("{r:?}.sees_tenant({t})"),
                role.sees_tenant(&tenant(t)),
                expected,
            );
            m.check(
                format!("{r:?}.read_tenant({t})"),
                role.read_tenant(&tenant(t)),
                if expected { Allow } else { Hidden },
            );
        }
    }
    m.assert_none();
}

#[test]
fn administer_is_for_admins_only() {
    let mut m = Mismatches::default();
    for r in ALL {
        let expected = if r == R::Admin { Allow } else { Forbidden };
        m.check(
            format!("{r:?}.administer()"),
            r.role().administer(),
            expected,
        );
    }
    m.assert_none();
}

#[test]
fn read_audit_is_for_admins_and_auditors() {
    let mut m = Mismatches::default();
    for r in ALL {
        let expected = if matches!(r, R::Admin | R::Auditor) {
            Allow
        } else {
            Forbidden
        };
        m.check(
            format!("{r:?}.read_audit()"),
            r.role().read_audit(),
            expected,
        );
    }
    m.assert_none();
}

// ---------------------------------------------------------------------------
// Layers, resolution, feed
// ---------------------------------------------------------------------------

fn expected_read_layer(r: R, namespace: &str, s: &Scope) -> Decision {
    let sees = namespace == "checkout";
    match r {
        R::Admin | R::Auditor => Allow,
        R::Service => Forbidden,
        R::TenantAdmin => {
            if names_acme(s) {
                Allow
            } else {
                Hidden
            }
        }
        R::Editor | R::Viewer => {
            if sees {
                Allow
            } else {
                Hidden
            }
        }
        R::EditorAcme | R::ViewerAcme => {
            if sees && names_acme(s) {
                Allow
            } else {
                Hidden
            }
        }
    }
}

fn expected_write_layer(r: R, namespace: &str, s: &Scope) -> Decision {
    match (r, expected_read_layer(r, namespace, s)) {
        (_, Hidden) => Hidden,
        (R::Admin | R::TenantAdmin | R::Editor | R::EditorAcme, read) => read,
        (R::Viewer | R::ViewerAcme | R::Service | R::Auditor, _) => Forbidden,
    }
}

#[test]
fn read_layer_and_write_layer_for_every_role_namespace_and_scope() {
    let mut m = Mismatches::default();
    for r in ALL {
        let role = r.role();
        for namespace in ["checkout", "billing"] {
            for (label, s) in scopes() {
                m.check(
                    format!("{r:?}.read_layer({namespace}, {label})"),
                    role.read_layer(&ns(namespace), &s),
                    expected_read_layer(r, namespace, &s),
                );
                m.check(
                    format!("{r:?}.write_layer({namespace}, {label})"),
                    role.write_layer(&ns(namespace), &s),
                    expected_write_layer(r, namespace, &s),
                );
            }
        }
    }
    m.assert_none();
}

fn expected_read_resolved(r: R, namespace: &str, c: &Scope) -> Decision {
    let sees = namespace == "checkout";
    let confined = |c: &Scope| match c.tenant.as_ref().map(TenantId::as_str) {
        Some("acme") => Allow,
        Some(_) => Hidden,
        None => Forbidden,
    };
    match r {
        R::Admin | R::Auditor => Allow,
        R::Service => {
            let env = c.env.as_ref().map(EnvName::as_str);
            let svc = c.service.as_ref().map(ServiceName::as_str);
            if env == Some("prod") && svc == Some("api") {
                Allow
            } else {
                Forbidden
            }
        }
        R::TenantAdmin => confined(c),
        R::Editor | R::Viewer => {
            if sees {
                Allow
            } else {
                Hidden
            }
        }
        R::EditorAcme | R::ViewerAcme => {
            if sees {
                confined(c)
            } else {
                Hidden
            }
        }
    }
}

#[test]
fn read_resolved_for_every_role_namespace_and_context() {
    let mut m = Mismatches::default();
    for r in ALL {
        let role = r.role();
        for namespace in ["checkout", "billing"] {
            for (label, c) in scopes() {
                m.check(
                    format!("{r:?}.read_resolved({namespace}, {label})"),
                    role.read_resolved(&ns(namespace), &c),
                    expected_read_resolved(r, namespace, &c),
                );
            }
        }
    }
    m.assert_none();
}

#[test]
fn read_feed_is_for_unconfined_readers_of_every_tenant() {
    let mut m = Mismatches::default();
    for r in ALL {
        for namespace in ["checkout", "billing"] {
            let expected = match r {
                R::Admin | R::Auditor | R::Service => Allow,
                R::TenantAdmin => Forbidden,
                R::Editor | R::EditorAcme | R::Viewer | R::ViewerAcme => {
                    if namespace == "checkout" {
                        Forbidden
                    } else {
                        Hidden
                    }
                }
            };
            m.check(
                format!("{r:?}.read_feed({namespace})"),
                r.role().read_feed(&ns(namespace)),
                expected,
            );
        }
    }
    m.assert_none();
}

// ---------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------

#[test]
fn manage_tokens_admins_for_all_tenant_admins_for_their_tenant() {
    let mut m = Mismatches::default();
    let acme = tenant("acme");
    let globex = tenant("globex");
    for r in ALL {
        for (label, t) in [
            ("none", None),
            ("acme", Some(&acme)),
            ("globex", Some(&globex)),
        ] {
            let expected = match r {
                R::Admin => Allow,
                R::TenantAdmin if label == "acme" => Allow,
                _ => Forbidden,
            };
            m.check(
                format!("{r:?}.manage_tokens({label})"),
                r.role().manage_tokens(t),
                expected,
            );
        }
    }
    m.assert_none();
}

/// Roles one might try to grant, beyond the eight under test.
fn grantees() -> Vec<(&'static str, Role)> {
    let mut all: Vec<(&'static str, Role)> = vec![
        ("admin", admin()),
        ("auditor", auditor()),
        ("service prod/api", service("prod", "api")),
        ("service dev/web", service("dev", "web")),
        ("tenant-admin acme", tenant_admin("acme")),
        ("tenant-admin globex", tenant_admin("globex")),
        ("editor {checkout}", editor(&["checkout"], None)),
        (
            "editor {checkout} acme",
            editor(&["checkout"], Some("acme")),
        ),
        (
            "editor {checkout,billing} acme",
            editor(&["checkout", "billing"], Some("acme")),
        ),
        (
            "editor {checkout} globex",
            editor(&["checkout"], Some("globex")),
        ),
        ("viewer {checkout}", viewer(&["checkout"], None)),
        (
            "viewer {checkout} acme",
            viewer(&["checkout"], Some("acme")),
        ),
        ("viewer {billing} acme", viewer(&["billing"], Some("acme"))),
        (
            "viewer {checkout} globex",
            viewer(&["checkout"], Some("globex")),
        ),
    ];
    all.sort_by_key(|(label, _)| *label);
    all
}

#[test]
fn may_grant_admins_anything_tenant_admins_their_tenant_others_nothing() {
    let mut m = Mismatches::default();
    for r in ALL {
        for (label, grantee) in grantees() {
            let expected = match r {
                R::Admin => true,
                R::TenantAdmin => matches!(
                    label,
                    "tenant-admin acme"
                        | "editor {checkout} acme"
                        | "editor {checkout,billing} acme"
                        | "viewer {checkout} acme"
                        | "viewer {billing} acme"
                ),
                // Not even their own role: granting is a token-management power.
                _ => false,
            };
            m.check(
                format!("{r:?}.may_grant({label})"),
                r.role().may_grant(&grantee),
                expected,
            );
        }
    }
    m.assert_none();
}

/// Every decision a role takes over a sample of inputs, allowed or not.
fn powers(role: &Role) -> Vec<(String, bool)> {
    let mut out = vec![
        ("administer".to_owned(), role.administer() == Allow),
        ("read_audit".to_owned(), role.read_audit() == Allow),
    ];
    let acme = tenant("acme");
    let globex = tenant("globex");
    for (label, t) in [
        ("none", None),
        ("acme", Some(&acme)),
        ("globex", Some(&globex)),
    ] {
        out.push((
            format!("manage_tokens({label})"),
            role.manage_tokens(t) == Allow,
        ));
    }
    for t in ["acme", "globex"] {
        out.push((format!("sees_tenant({t})"), role.sees_tenant(&tenant(t))));
    }
    for namespace in ["checkout", "billing"] {
        let n = ns(namespace);
        out.push((
            format!("sees_namespace({namespace})"),
            role.sees_namespace(&n),
        ));
        out.push((
            format!("read_feed({namespace})"),
            role.read_feed(&n) == Allow,
        ));
        for (label, s) in scopes() {
            out.push((
                format!("read_layer({namespace}, {label})"),
                role.read_layer(&n, &s) == Allow,
            ));
            out.push((
                format!("write_layer({namespace}, {label})"),
                role.write_layer(&n, &s) == Allow,
            ));
            out.push((
                format!("read_resolved({namespace}, {label})"),
                role.read_resolved(&n, &s) == Allow,
            ));
        }
    }
    out
}

#[test]
fn no_one_grants_more_than_they_hold() {
    let mut violations = Vec::new();
    let mut granted = 0;
    for r in ALL {
        let granter = r.role();
        let held = powers(&granter);
        for (label, grantee) in grantees() {
            if !granter.may_grant(&grantee) {
                continue;
            }
            granted += 1;
            for ((power, theirs), (_, ours)) in powers(&grantee).into_iter().zip(&held) {
                if theirs && !ours {
                    violations.push(format!("{r:?} may grant {label}, which may {power}"));
                }
            }
        }
    }
    assert!(granted > grantees().len(), "the check must grant something");
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

// ---------------------------------------------------------------------------
// The JSON form (the `ecs_role` claim of a JWT)
// ---------------------------------------------------------------------------

#[test]
fn roles_read_and_write_their_json_form() {
    let cases = [
        (json!({"role": "admin"}), admin()),
        (json!({"role": "auditor"}), auditor()),
        (
            json!({"role": "tenant-admin", "tenant": "acme"}),
            tenant_admin("acme"),
        ),
        (
            json!({"role": "editor", "namespaces": ["checkout"]}),
            editor(&["checkout"], None),
        ),
        (
            json!({"role": "editor", "namespaces": ["checkout"], "tenant": "acme"}),
            editor(&["checkout"], Some("acme")),
        ),
        (
            json!({"role": "viewer", "namespaces": ["checkout"]}),
            viewer(&["checkout"], None),
        ),
        (
            json!({"role": "viewer", "namespaces": ["checkout"], "tenant": "acme"}),
            viewer(&["checkout"], Some("acme")),
        ),
        (
            json!({"role": "service", "env": "prod", "service": "api"}),
            service("prod", "api"),
        ),
    ];
    for (value, role) in cases {
        let parsed: Role = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(parsed, role, "{value}");
        assert_eq!(serde_json::to_value(&role).unwrap(), value);
    }
}

#[test]
fn malformed_role_claims_are_refused() {
    for value in [
        json!({"role": "superuser"}),
        json!({"role": "tenant-admin"}),
        json!({"role": "editor"}),
        json!({"role": "viewer", "tenant": "acme"}),
        json!({"role": "service", "env": "prod"}),
        json!({"role": "tenant-admin", "tenant": "ac.me"}),
        json!({"role": "tenant-admin", "tenant": "*"}),
        json!({"role": "editor", "namespaces": ["check out"]}),
        json!({"tenant": "acme"}),
        json!("admin"),
    ] {
        assert!(
            serde_json::from_value::<Role>(value.clone()).is_err(),
            "{value} must not parse as a role"
        );
    }
}

/// `POST /v1/tokens` answers 400 "tenant does not apply to the admin role",
/// but the same role as a JWT claim is accepted, silently dropping the field:
/// `{"role": "admin", "tenant": "acme"}` becomes an unconfined admin. (serde
/// ignores `deny_unknown_fields` for the unit variants of an internally tagged
/// enum.)
#[test]
fn admin_and_auditor_claims_with_confinement_fields_are_refused() {
    let mut parsed = Vec::new();
    for value in [
        json!({"role": "admin", "tenant": "acme"}),
        json!({"role": "admin", "namespaces": ["checkout"]}),
        json!({"role": "auditor", "tenant": "acme"}),
        json!({"role": "auditor", "env": "prod", "service": "api"}),
    ] {
        if let Ok(role) = Role::from_claim(&value) {
            parsed.push(format!("{value} parsed as {role:?}"));
        }
    }
    assert!(parsed.is_empty(), "{}", parsed.join("\n"));
    assert_eq!(Role::from_claim(&json!({"role": "admin"})), Ok(Role::Admin));
}
