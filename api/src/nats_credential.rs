//! NATS credentials for a locked-down NATS (`deploy/nats-auth.conf`, ADR 14
//! and 18): an nkey and the users entry that grants it exactly its permissions.
//!
//! The ECS server's user, in the `ECS` account that holds every stream, may do
//! everything there. A feed reader, in the `FEED` account whose one stream is
//! a mirror of the feed under the same name, may only create
//! ordered consumers on the feed bucket whose one filter lies within the keys
//! it may read (NATS checks the filter in the create request's subject,
//! `$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>`), answer their flow
//! control, publish the drift reports of its service (`ecs.drift.*.<service>`,
//! when the credential names one), and subscribe below its own reply prefix.
//! It cannot publish anything else: not events, not the feed, not the audit
//! stream, not the keyring, and no other JetStream request (no direct get, no
//! stream info).

use ecs_client::transport::inbox_prefix_of;
use ecs_domain::feed::{FEED_BUCKET, tenant_reader_keys};
use ecs_domain::{ServiceName, TenantId};

/// The marker line in `deploy/nats-auth.conf` (in the `FEED` account's users)
/// below which feed readers' users entries go.
pub const USERS_MARKER: &str = "# <feed-users>";

/// The placeholder of the ECS server's public nkey in `deploy/nats-auth.conf`.
pub const SERVER_KEY_PLACEHOLDER: &str = "<ecs-server-nkey>";

/// Whom a credential is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// The ECS server: every subject.
    Server,
    /// A reader of the change feed: of these tenants only (every tenant when
    /// empty), named after a service for the operator's records.
    FeedReader {
        tenants: Vec<TenantId>,
        service: Option<ServiceName>,
    },
}

/// A freshly issued nkey and what it may do.
pub struct Credential {
    /// The secret seed (`SU...`): goes to the holder only.
    pub seed: String,
    /// The public key (`U...`): goes into the NATS configuration.
    pub public_key: String,
    pub holder: Holder,
}

impl Credential {
    /// Issues a new user nkey for `holder`.
    pub fn issue(holder: Holder) -> anyhow::Result<Credential> {
        let pair = nkeys::KeyPair::new_user();
        let seed = pair
            .seed()
            .map_err(|e| anyhow::anyhow!("cannot encode the nkey seed: {e}"))?;
        Ok(Credential {
            seed,
            public_key: pair.public_key(),
            holder,
        })
    }

    /// Subjects the holder may publish to.
    pub fn publish_allow(&self) -> Vec<String> {
        match &self.holder {
            Holder::Server => vec![">".to_owned()],
            Holder::FeedReader { tenants, service } => {
                let stream = format!("KV_{FEED_BUCKET}");
                let keys: Vec<String> = if tenants.is_empty() {
                    vec!["namespace.>".into(), "tenant.>".into(), "layer.>".into()]
                } else {
                    let mut keys: Vec<String> =
                        tenants.iter().flat_map(tenant_reader_keys).collect();
                    keys.sort();
                    keys.dedup();
                    keys
                };
                let mut allow: Vec<String> = keys
                    .iter()
                    .map(|key| {
                        format!("$JS.API.CONSUMER.CREATE.{stream}.*.$KV.{FEED_BUCKET}.{key}")
                    })
                    .collect();
                // Flow-control replies of its push consumers.
                allow.push(format!("$JS.FC.{stream}.>"));
                // A service's drift reports, in any env, on its own subject
                // only (ADR 24); the body must name the same service.
                if let Some(service) = service {
                    allow.push(format!("{}.*.{service}", ecs_domain::drift::SUBJECT_PREFIX));
                }
                allow
            }
        }
    }

    /// Subjects the holder may subscribe to.
    pub fn subscribe_allow(&self) -> Vec<String> {
        match &self.holder {
            Holder::Server => vec![">".to_owned()],
            Holder::FeedReader { .. } => vec![format!("{}.>", inbox_prefix_of(&self.public_key))],
        }
    }

    /// The entry of the `users` list of `deploy/nats-auth.conf` that grants
    /// this credential its permissions.
    pub fn users_entry(&self) -> String {
        let list = |subjects: Vec<String>| {
            subjects
                .iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "# {}\n{{ nkey: \"{}\", permissions: {{\n    publish: {{ allow: [{}] }},\n    subscribe: {{ allow: [{}] }} }} }}\n",
            self.describe(),
            self.public_key,
            list(self.publish_allow()),
            list(self.subscribe_allow()),
        )
    }

    /// One line saying whom the credential is for.
    pub fn describe(&self) -> String {
        match &self.holder {
            Holder::Server => "The ECS server (ECS_NATS_NKEY): every subject.".to_owned(),
            Holder::FeedReader { tenants, service } => {
                let whom = service
                    .as_ref()
                    .map_or_else(String::new, |s| format!(" of service {s}"));
                let reports = if service.is_some() {
                    " (and its service's drift reports)"
                } else {
                    ""
                };
                if tenants.is_empty() {
                    format!("Feed reader{whom}: every tenant, read only{reports}.")
                } else {
                    let names: Vec<&str> = tenants.iter().map(TenantId::as_str).collect();
                    format!(
                        "Feed reader{whom}: tenant {}, read only{reports}.",
                        names.join(", ")
                    )
                }
            }
        }
    }

    /// What `ecs nats-credential` prints: the seed for the holder, then the
    /// users entry for the NATS configuration.
    pub fn report(&self) -> String {
        let (usage, place) = match self.holder {
            Holder::Server => (
                "ECS_NATS_NKEY of `ecs serve`, with ECS_FEED_MIRROR_API=$JS.feed.API",
                format!(
                    "# This entry is in the ECS account of deploy/nats-auth.conf: put the public key\n\
                     # in place of {SERVER_KEY_PLACEHOLDER} and reload NATS (nats-server --signal reload)."
                ),
            ),
            Holder::FeedReader { .. } => (
                "ClientSettings::with_nats_auth(NatsAuth::Nkey(seed)), with for_tenant for each tenant",
                format!(
                    "# Add this entry below `{USERS_MARKER}` (the FEED account's users) in\n\
                     # deploy/nats-auth.conf and reload NATS (nats-server --signal reload)."
                ),
            ),
        };
        format!(
            "# nkey seed: give it to its holder only ({usage}).\n{}\n\n{place}\n{}",
            self.seed,
            self.users_entry()
        )
    }
}

/// `deploy/nats-auth.conf` with the server's public key filled in and these
/// users entries added below the marker.
pub fn render_auth_config(template: &str, server_key: &str, entries: &[String]) -> String {
    let mut out = template.replace(SERVER_KEY_PLACEHOLDER, server_key);
    if let Some(at) = out.rfind(USERS_MARKER) {
        let end = at + USERS_MARKER.len();
        out.insert_str(end, &format!("\n{}", entries.join("\n")));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_tenant_reader_may_create_consumers_only_within_its_keys_and_read_its_inbox() {
        let reader = Credential::issue(Holder::FeedReader {
            tenants: vec![TenantId::parse("acme").unwrap()],
            service: None,
        })
        .unwrap();
        let create = "$JS.API.CONSUMER.CREATE.KV_ecs-feed.*.$KV.ecs-feed";
        assert_eq!(
            reader.publish_allow(),
            vec![
                format!("{create}.layer.*._.>"),
                format!("{create}.layer.*.acme.>"),
                format!("{create}.namespace.>"),
                format!("{create}.tenant.acme"),
                "$JS.FC.KV_ecs-feed.>".to_owned(),
            ]
        );
        assert_eq!(
            reader.subscribe_allow(),
            vec![format!("_INBOX.{}.>", reader.public_key)]
        );
        assert!(reader.seed.starts_with("SU") && reader.public_key.starts_with('U'));
        let report = reader.report();
        assert!(report.contains(&reader.seed) && report.contains(&reader.public_key));
        // The users entry goes below the marker, not into the comments above it.
        let template = format!("# see {USERS_MARKER}\nusers = [\n  {USERS_MARKER}\n]\n");
        let rendered = render_auth_config(&template, "UKEY", &[reader.users_entry()]);
        assert!(rendered.starts_with(&format!("# see {USERS_MARKER}\nusers = [")));
        assert!(rendered.contains(&reader.public_key));
    }

    #[test]
    fn a_service_reader_may_also_publish_its_services_drift_reports_and_no_other() {
        let reader = Credential::issue(Holder::FeedReader {
            tenants: vec![],
            service: Some(ServiceName::parse("billing").unwrap()),
        })
        .unwrap();
        let allow = reader.publish_allow();
        assert!(
            allow.contains(&"ecs.drift.*.billing".to_owned()),
            "{allow:?}"
        );
        assert_eq!(
            allow.iter().filter(|s| s.starts_with("ecs.")).count(),
            1,
            "{allow:?}"
        );
        assert!(reader.describe().contains("drift reports"));
    }
}
