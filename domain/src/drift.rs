//! Drift and usage reports: what a running SDK client says about itself
//! (ADR 24), and the rules that read them. Shared by the SDK, which writes
//! reports, and the server, which checks, records and judges them.
//!
//! A report names the client (service, env, instance, SDK version), the
//! position it has applied of each namespace it follows, how often each key
//! was read since its previous report, its live subscribers and the
//! propagation times (event time → apply) it measured. The format changes
//! only by adding fields.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{EnvName, InstanceId, NamespaceName, ServiceName, TenantId};
use crate::role::Role;

/// The report format version.
pub const REPORT_VERSION: u32 = 1;

/// Reports travel on `ecs.drift.<env>.<service>` (the `ECS` account).
pub const SUBJECT_PREFIX: &str = "ecs.drift";

/// How often a client reports unless told otherwise, in seconds.
pub const DEFAULT_INTERVAL_SECS: u64 = 15;

/// An instance that has not reported for this many of its intervals is stale.
pub const STALE_AFTER_INTERVALS: u64 = 3;

/// The longest interval a report may announce, in seconds.
pub const MAX_INTERVAL_SECS: u64 = 3600;

/// Bounds that keep one report small (it is one NATS message or request).
pub const MAX_FOLLOWED: usize = 256;
pub const MAX_READS: usize = 10_000;
pub const MAX_PROPAGATION_SAMPLES: usize = 1024;
pub const MAX_KEY_LEN: usize = 256;
pub const MAX_VERSION_LEN: usize = 64;

/// The subject a client of `service` in `env` publishes its reports on.
pub fn subject(env: &EnvName, service: &ServiceName) -> String {
    format!("{SUBJECT_PREFIX}.{env}.{service}")
}

/// The env and service a report subject names; `None` for anything else.
pub fn parse_subject(subject: &str) -> Option<(EnvName, ServiceName)> {
    let rest = subject.strip_prefix(SUBJECT_PREFIX)?.strip_prefix('.')?;
    let (env, service) = rest.split_once('.')?;
    Some((EnvName::parse(env).ok()?, ServiceName::parse(service).ok()?))
}

/// One client's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    /// The format version (1).
    pub v: u32,
    pub service: ServiceName,
    pub env: EnvName,
    pub instance: InstanceId,
    /// The `ecs-client` version.
    pub sdk_version: String,
    /// How often this client reports, in seconds.
    pub interval_secs: u64,
    /// When the client started, by its clock.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub started_at: Option<OffsetDateTime>,
    /// When it sent this report, by its clock (the server judges by the time
    /// it received it).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub sent_at: Option<OffsetDateTime>,
    /// What the client follows and the position it applied of each.
    pub followed: Vec<Followed>,
    /// Key reads since the previous report.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reads: Vec<KeyReads>,
    /// Watchers open in the client now.
    #[serde(default)]
    pub subscribers: u64,
    /// Seconds from each change's acceptance to its apply in the client,
    /// measured since the previous report (at most 1,024 of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub propagation: Vec<f64>,
    /// The client is closing: this is its last report.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stopping: bool,
}

/// One followed namespace: the tenants followed (empty: every tenant) and
/// the highest position applied among the feed items that resolve it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Followed {
    pub namespace: NamespaceName,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<TenantId>,
    pub applied_position: u64,
}

/// How often a key (a top-level property) of a namespace was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyReads {
    pub namespace: NamespaceName,
    pub key: String,
    pub reads: u64,
}

/// Why a report was refused; `field` names the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {detail}")]
pub struct ReportError {
    pub field: String,
    pub detail: String,
}

fn refuse(field: impl Into<String>, detail: impl Into<String>) -> Result<(), ReportError> {
    Err(ReportError {
        field: field.into(),
        detail: detail.into(),
    })
}

impl DriftReport {
    /// Checks what the types cannot: the version, the bounds, and that each
    /// number is one a client can have measured.
    pub fn check(&self) -> Result<(), ReportError> {
        if self.v != REPORT_VERSION {
            return refuse("v", format!("only version {REPORT_VERSION} is understood"));
        }
        if self.sdk_version.is_empty()
            || self.sdk_version.len() > MAX_VERSION_LEN
            || self.sdk_version.chars().any(char::is_control)
        {
            return refuse(
                "sdk_version",
                "must be 1 to 64 characters, none a control character",
            );
        }
        if !(1..=MAX_INTERVAL_SECS).contains(&self.interval_secs) {
            return refuse("interval_secs", "must be 1 to 3600");
        }
        if self.followed.len() > MAX_FOLLOWED {
            return refuse("followed", format!("at most {MAX_FOLLOWED} entries"));
        }
        if self.reads.len() > MAX_READS {
            return refuse("reads", format!("at most {MAX_READS} entries"));
        }
        if let Some(i) = self
            .reads
            .iter()
            .position(|r| r.key.is_empty() || r.key.len() > MAX_KEY_LEN || r.key.contains('\0'))
        {
            return refuse(
                format!("reads/{i}/key"),
                "must be 1 to 256 characters without NUL",
            );
        }
        if self.propagation.len() > MAX_PROPAGATION_SAMPLES {
            return refuse(
                "propagation",
                format!("at most {MAX_PROPAGATION_SAMPLES} samples"),
            );
        }
        if let Some(i) = self
            .propagation
            .iter()
            .position(|s| !s.is_finite() || *s < 0.0)
        {
            return refuse(
                format!("propagation/{i}"),
                "must be a finite, non-negative number of seconds",
            );
        }
        Ok(())
    }
}

/// The key a JSON pointer reads: its first reference token, unescaped
/// (`/limits/max` reads `limits`). `None` for the whole document.
pub fn top_key(pointer: &str) -> Option<String> {
    let rest = pointer.strip_prefix('/')?;
    let token = rest.split('/').next().unwrap_or(rest);
    Some(token.replace("~1", "/").replace("~0", "~"))
}

/// Where an instance stands on what it last reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftStatus {
    /// It has applied the latest position of everything it follows.
    Current,
    /// Something it follows changed after the position it applied.
    Behind,
}

impl DriftStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DriftStatus::Current => "current",
            DriftStatus::Behind => "behind",
        }
    }

    pub fn of(behind: bool) -> DriftStatus {
        if behind {
            DriftStatus::Behind
        } else {
            DriftStatus::Current
        }
    }
}

/// Whether an instance is stale: silent for [`STALE_AFTER_INTERVALS`] of
/// the interval it announced, or stopped (its last report said so). What a
/// stale instance runs now is unknown; its status is what it last reported.
pub fn is_stale(silent_secs: u64, interval_secs: u64, stopping: bool) -> bool {
    stopping || silent_secs >= interval_secs.saturating_mul(STALE_AFTER_INTERVALS)
}

/// What of an instance's report a role may see: the followed entries it may
/// know of (tenant-bound roles: those that follow their tenant, narrowed to
/// it), or `None` when the instance is none of its business.
pub fn visible_followed(
    role: &Role,
    env: &EnvName,
    service: &ServiceName,
    followed: &[Followed],
) -> Option<Vec<Followed>> {
    let visible: Vec<Followed> = match role {
        Role::Admin | Role::Auditor => followed.to_vec(),
        Role::Service {
            env: own_env,
            service: own_service,
        } => {
            if own_env != env || own_service != service {
                return None;
            }
            followed.to_vec()
        }
        _ => {
            let own = role.tenant();
            followed
                .iter()
                .filter(|f| role.sees_namespace(&f.namespace))
                .filter_map(|f| match own {
                    None => Some(f.clone()),
                    Some(tenant) if f.tenants.contains(tenant) => Some(Followed {
                        tenants: vec![tenant.clone()],
                        ..f.clone()
                    }),
                    Some(_) => None,
                })
                .collect()
        }
    };
    if visible.is_empty() && !followed.is_empty() {
        return None;
    }
    if followed.is_empty() && !matches!(role, Role::Admin | Role::Auditor | Role::Service { .. }) {
        return None;
    }
    Some(visible)
}

/// A usage window such as `30m`, `24h` or `7d`, in seconds (at most 90 days).
pub fn parse_window(text: &str) -> Result<u64, String> {
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let scale = match unit {
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err("a number followed by m, h or d, such as 24h".to_owned()),
    };
    let number: u64 = number
        .parse()
        .map_err(|_| "a number followed by m, h or d, such as 24h".to_owned())?;
    let seconds = number.saturating_mul(scale);
    if seconds == 0 || seconds > 90 * 86_400 {
        return Err("between 1m and 90d".to_owned());
    }
    Ok(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_round_trip_and_refuse_anything_else() {
        let env = EnvName::parse("prod").unwrap();
        let service = ServiceName::parse("billing").unwrap();
        assert_eq!(subject(&env, &service), "ecs.drift.prod.billing");
        assert_eq!(
            parse_subject("ecs.drift.prod.billing"),
            Some((env, service))
        );
        for bad in [
            "ecs.drift.prod",
            "ecs.drift.prod.a.b",
            "ecs.events.prod.a",
            "ecs.drift._.a",
        ] {
            assert_eq!(parse_subject(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_report_is_refused_naming_the_field_that_breaks_a_bound() {
        let good = || DriftReport {
            v: 1,
            service: ServiceName::parse("web").unwrap(),
            env: EnvName::parse("prod").unwrap(),
            instance: InstanceId::parse("web-1").unwrap(),
            sdk_version: "0.1.0".into(),
            interval_secs: 15,
            started_at: None,
            sent_at: None,
            followed: vec![],
            reads: vec![],
            subscribers: 0,
            propagation: vec![],
            stopping: false,
        };
        assert_eq!(good().check(), Ok(()));
        let field = |report: DriftReport| report.check().unwrap_err().field;
        assert_eq!(field(DriftReport { v: 2, ..good() }), "v");
        assert_eq!(
            field(DriftReport {
                interval_secs: 0,
                ..good()
            }),
            "interval_secs"
        );
        assert_eq!(
            field(DriftReport {
                sdk_version: "1\u{0}".into(),
                ..good()
            }),
            "sdk_version"
        );
        let read = |key: &str| KeyReads {
            namespace: NamespaceName::parse("checkout").unwrap(),
            key: key.into(),
            reads: 1,
        };
        assert_eq!(
            field(DriftReport {
                reads: vec![read("a"), read("b\u{0}")],
                ..good()
            }),
            "reads/1/key"
        );
        assert_eq!(
            field(DriftReport {
                propagation: vec![0.1, f64::NAN],
                ..good()
            }),
            "propagation/1"
        );
        assert_eq!(
            field(DriftReport {
                propagation: vec![-1.0],
                ..good()
            }),
            "propagation/0"
        );
    }

    #[test]
    fn the_top_key_of_a_pointer_is_its_first_token_unescaped() {
        assert_eq!(top_key("/limits/max").as_deref(), Some("limits"));
        assert_eq!(top_key("/a~1b").as_deref(), Some("a/b"));
        assert_eq!(top_key("/a~0b/c").as_deref(), Some("a~b"));
        assert_eq!(top_key(""), None);
    }

    #[test]
    fn an_instance_silent_for_three_intervals_or_stopped_is_stale() {
        assert!(!is_stale(44, 15, false));
        assert!(is_stale(45, 15, false));
        assert!(is_stale(0, 15, true));
    }

    #[test]
    fn windows_parse_with_their_unit_and_bounds() {
        assert_eq!(parse_window("30m"), Ok(1800));
        assert_eq!(parse_window("24h"), Ok(86_400));
        assert_eq!(parse_window("7d"), Ok(604_800));
        for bad in ["", "h", "0h", "91d", "5s", "-1h", "1.5h"] {
            assert!(parse_window(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_tenant_role_sees_only_instances_following_its_tenant_narrowed_to_it() {
        let acme = TenantId::parse("acme").unwrap();
        let globex = TenantId::parse("globex").unwrap();
        let ns = NamespaceName::parse("checkout").unwrap();
        let env = EnvName::parse("prod").unwrap();
        let service = ServiceName::parse("web").unwrap();
        let both = vec![Followed {
            namespace: ns.clone(),
            tenants: vec![acme.clone(), globex.clone()],
            applied_position: 4,
        }];
        let every = vec![Followed {
            namespace: ns,
            tenants: vec![],
            applied_position: 4,
        }];
        let role = Role::TenantAdmin {
            tenant: acme.clone(),
        };
        let seen = visible_followed(&role, &env, &service, &both).unwrap();
        assert_eq!(seen[0].tenants, vec![acme]);
        assert_eq!(visible_followed(&role, &env, &service, &every), None);
        assert!(visible_followed(&Role::Admin, &env, &service, &every).is_some());
        let other = Role::Service {
            env: env.clone(),
            service: ServiceName::parse("api").unwrap(),
        };
        assert_eq!(visible_followed(&other, &env, &service, &every), None);
    }
}
