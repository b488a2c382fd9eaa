//! The feed mirror in the readers' NATS account (ADR 18).
//!
//! With `deploy/nats-auth.conf`, the streams live in the `ECS` account and the
//! feed readers in the `FEED` account, which holds one stream only: a mirror of
//! the feed bucket's stream under the same name (`KV_ecs-feed`), so the SDK
//! reads it unchanged. A mirror captures no subject, so whatever a reader has
//! a push consumer deliver to lands where no stream records it.
//!
//! The server creates the mirror through the `FEED` account's JetStream API,
//! which `ECS` imports under a prefix ([`FEED_API_PREFIX`] by default); the
//! mirror reads the feed through the consumer-create API that `FEED` imports
//! from `ECS` under [`SOURCE_API_PREFIX`], with deliveries below
//! [`DELIVER_PREFIX`]. A tenant's erasure purges its keys in the bucket with
//! purge markers (rollups), which the mirror carries and applies.

use async_nats::jetstream::{self, stream};

use ecs_domain::feed::FEED_BUCKET;

use crate::feed::FEED_MAX_CONSUMERS;

/// The prefix under which the server's account reaches the readers' account's
/// JetStream API in `deploy/nats-auth.conf` (`ECS_FEED_MIRROR_API`).
pub const FEED_API_PREFIX: &str = "$JS.feed.API";

/// The prefix under which the readers' account reaches the feed's
/// consumer-create API in the server's account (`deploy/nats-auth.conf`).
pub const SOURCE_API_PREFIX: &str = "$JS.ecs.API";

/// The subjects the mirror's consumer delivers to, exported by the server's
/// account to the readers' account only (`deploy/nats-auth.conf`).
pub const DELIVER_PREFIX: &str = "ecs.feed-mirror";

/// The name of the feed's stream, in both accounts.
pub fn stream_name() -> String {
    format!("KV_{FEED_BUCKET}")
}

/// How the mirror is configured: one message per key like the bucket,
/// rollups allowed (the purge markers of an erasure roll a key up), single
/// messages never deleted, room for a fleet of readers.
pub fn mirror_config(replicas: usize) -> stream::Config {
    stream::Config {
        name: stream_name(),
        description: Some("ECS change feed, mirrored for feed readers (ADR 18)".to_owned()),
        mirror: Some(stream::Source {
            name: stream_name(),
            // The filter puts the mirror's consumer-create request on the
            // subject form that names the filter, the only one exported.
            filter_subject: Some(format!("$KV.{FEED_BUCKET}.>")),
            external: Some(stream::External {
                api_prefix: SOURCE_API_PREFIX.to_owned(),
                delivery_prefix: Some(DELIVER_PREFIX.to_owned()),
            }),
            ..Default::default()
        }),
        max_messages_per_subject: 1,
        allow_rollup: true,
        deny_delete: true,
        storage: stream::StorageType::File,
        num_replicas: replicas,
        max_consumers: FEED_MAX_CONSUMERS,
        ..Default::default()
    }
}

/// Why the readers' account cannot serve the feed.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error(
        "the feed readers' account cannot be reached through {prefix} (ECS_FEED_MIRROR_API; \
         see the accounts in deploy/nats-auth.conf): {reason}"
    )]
    Unreachable { prefix: String, reason: String },
    #[error(
        "{stream} in the feed readers' account is not a mirror of the feed; remove it so the \
         server can create the mirror"
    )]
    NotAMirror { stream: String },
}

/// Creates the feed mirror in the readers' account (whose JetStream API the
/// server's account imports under `api_prefix`) unless it exists, and checks
/// that an existing stream of that name is a mirror of the feed.
pub async fn ensure_mirror(
    client: &async_nats::Client,
    api_prefix: &str,
    replicas: usize,
) -> Result<(), MirrorError> {
    let feed_js = jetstream::with_prefix(client.clone(), api_prefix);
    let prefix = || api_prefix.to_owned();
    match feed_js.get_stream(stream_name()).await {
        Ok(mut existing) => {
            let info = existing
                .info()
                .await
                .map_err(|e| MirrorError::Unreachable {
                    prefix: prefix(),
                    reason: e.to_string(),
                })?;
            let mirrors_feed = info
                .config
                .mirror
                .as_ref()
                .is_some_and(|m| m.name == stream_name());
            if !mirrors_feed {
                return Err(MirrorError::NotAMirror {
                    stream: stream_name(),
                });
            }
            Ok(())
        }
        Err(error)
            if matches!(
                error.kind(),
                jetstream::context::GetStreamErrorKind::JetStream(e)
                    if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
            ) =>
        {
            feed_js
                .create_stream(mirror_config(replicas))
                .await
                .map_err(|e| MirrorError::Unreachable {
                    prefix: prefix(),
                    reason: e.to_string(),
                })?;
            tracing::info!("feed mirror created in the feed readers' account");
            Ok(())
        }
        Err(error) => Err(MirrorError::Unreachable {
            prefix: prefix(),
            reason: error.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped NATS configuration, which must export and import exactly
    /// the subjects the mirror uses.
    const SHIPPED: &str = include_str!("../../deploy/nats-auth.conf");

    #[test]
    fn the_mirror_captures_nothing_and_uses_the_shipped_prefixes() {
        let config = mirror_config(3);
        assert!(config.subjects.is_empty(), "a mirror captures no subject");
        assert_eq!(config.name, "KV_ecs-feed");
        let source = config.mirror.unwrap();
        assert_eq!(source.name, "KV_ecs-feed");
        let filter = source.filter_subject.unwrap();
        let external = source.external.unwrap();
        let deliver = external.delivery_prefix.unwrap();
        for needed in [
            format!(
                "{{ service: \"$JS.API.CONSUMER.CREATE.KV_ecs-feed.*.{filter}\", accounts: [FEED] }}"
            ),
            format!(
                "to: \"{}.CONSUMER.CREATE.KV_ecs-feed.*.{filter}\"",
                external.api_prefix
            ),
            format!("{{ stream: \"{deliver}.>\", accounts: [FEED] }}"),
            format!("{{ stream: {{ account: ECS, subject: \"{deliver}.>\" }} }}"),
            format!("to: \"{FEED_API_PREFIX}.>\""),
        ] {
            assert!(
                SHIPPED.contains(&needed),
                "deploy/nats-auth.conf lacks {needed}"
            );
        }
        assert!(config.allow_rollup && config.deny_delete && !config.deny_purge);
        assert_eq!(
            (config.max_messages_per_subject, config.num_replicas),
            (1, 3)
        );
    }
}
