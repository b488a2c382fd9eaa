//! The events stream: created on start when absent, and checked on every
//! start, since it is the only copy of every accepted change.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

/// The subjects of the events stream.
pub const EVENTS_SUBJECTS: &str = "ecs.events.>";

/// How the events stream is configured.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    pub name: String,
    pub replicas: usize,
    /// How long a command id is remembered for de-duplication.
    pub duplicate_window: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            name: "ECS_EVENTS".to_owned(),
            replicas: 1,
            duplicate_window: Duration::from_secs(24 * 60 * 60),
        }
    }
}

/// A setting of an existing events stream under which it could lose (or
/// drop) accepted events. Each names the stream setting and the safe value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsafeStream {
    #[error("deny_delete is false: single messages can be deleted (set deny_delete)")]
    DeleteAllowed,
    #[error("deny_purge is false: the stream can be purged (set deny_purge)")]
    PurgeAllowed,
    #[error("allow_rollup is true: a rollup purges earlier messages (unset allow_rollup)")]
    RollupAllowed,
    #[error("retention is {0:?}: messages are removed once consumed (use limits retention)")]
    Retention(stream::RetentionPolicy),
    #[error("max_age is {0:?}: old events expire (set max_age to 0, unlimited)")]
    MaxAge(Duration),
    #[error("max_bytes is {0}: old events are dropped at the limit (set -1, unlimited)")]
    MaxBytes(i64),
    #[error("max_msgs is {0}: old events are dropped at the limit (set -1, unlimited)")]
    MaxMessages(i64),
    #[error(
        "max_msgs_per_subject is {0}: an aggregate's older events are dropped (set -1, unlimited)"
    )]
    MaxMessagesPerSubject(i64),
    #[error("allow_msg_ttl is true: events can expire one by one (unset allow_msg_ttl)")]
    MessageTtl,
    #[error("discard is old: a limit added later would drop the oldest events (set discard new)")]
    DiscardOld,
    #[error("storage is memory: events are lost when the server stops (use file storage)")]
    MemoryStorage,
    #[error("num_replicas is {actual}, below the configured {expected} (ECS_STREAM_REPLICAS)")]
    Replicas { actual: usize, expected: usize },
    #[error("subjects {0:?} do not include {EVENTS_SUBJECTS}")]
    Subjects(Vec<String>),
}

/// Every setting of `config` under which the events stream could lose
/// events, empty when it is safe to run against.
pub fn unsafe_settings(config: &stream::Config, settings: &StreamSettings) -> Vec<UnsafeStream> {
    let unlimited = |limit: i64| limit <= 0;
    let mut found = Vec::new();
    if !config.deny_delete {
        found.push(UnsafeStream::DeleteAllowed);
    }
    if !config.deny_purge {
        found.push(UnsafeStream::PurgeAllowed);
    }
    if config.allow_rollup {
        found.push(UnsafeStream::RollupAllowed);
    }
    if config.retention != stream::RetentionPolicy::Limits {
        found.push(UnsafeStream::Retention(config.retention));
    }
    if !config.max_age.is_zero() {
        found.push(UnsafeStream::MaxAge(config.max_age));
    }
    if !unlimited(config.max_bytes) {
        found.push(UnsafeStream::MaxBytes(config.max_bytes));
    }
    if !unlimited(config.max_messages) {
        found.push(UnsafeStream::MaxMessages(config.max_messages));
    }
    if !unlimited(config.max_messages_per_subject) {
        found.push(UnsafeStream::MaxMessagesPerSubject(
            config.max_messages_per_subject,
        ));
    }
    if config.allow_message_ttl {
        found.push(UnsafeStream::MessageTtl);
    }
    if config.discard == stream::DiscardPolicy::Old {
        found.push(UnsafeStream::DiscardOld);
    }
    if config.storage == stream::StorageType::Memory {
        found.push(UnsafeStream::MemoryStorage);
    }
    if config.num_replicas.max(1) < settings.replicas {
        found.push(UnsafeStream::Replicas {
            actual: config.num_replicas,
            expected: settings.replicas,
        });
    }
    if !config.subjects.iter().any(|s| s == EVENTS_SUBJECTS) {
        found.push(UnsafeStream::Subjects(config.subjects.clone()));
    }
    found
}

/// Creates the events stream unless it exists: file storage, delete, purge
/// and rollups denied (history is immutable), no limit of age, size or count,
/// new messages refused rather than old ones dropped should a limit ever be
/// set, direct gets allowed (loading an aggregate reads only its last
/// message). Then checks the stream as it is (it may have been created or
/// edited by someone else) and refuses one that could lose events, after
/// setting an older stream's discard policy to new.
pub async fn ensure_stream(
    js: &jetstream::Context,
    settings: &StreamSettings,
) -> anyhow::Result<stream::Stream> {
    let config = stream::Config {
        name: settings.name.clone(),
        subjects: vec![EVENTS_SUBJECTS.to_owned()],
        storage: stream::StorageType::File,
        num_replicas: settings.replicas,
        duplicate_window: settings.duplicate_window,
        deny_delete: true,
        deny_purge: true,
        allow_direct: true,
        allow_rollup: false,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    };
    let mut stream = js.get_or_create_stream(config).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot create or open the events stream {}: {e}",
            settings.name
        )
    })?;
    let mut config = stream
        .info()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot read the settings of the events stream {}: {e}",
                settings.name
            )
        })?
        .config
        .clone();
    // Streams created before ECS asked for it discard old messages at a
    // limit. Turning that to new changes nothing stored, only that a limit
    // set later would refuse writes instead of dropping history: do it.
    if config.discard == stream::DiscardPolicy::Old {
        let mut tightened = config.clone();
        tightened.discard = stream::DiscardPolicy::New;
        match js.update_stream(&tightened).await {
            Ok(info) => {
                tracing::warn!(stream = settings.name, "events stream set to discard new");
                config = info.config;
            }
            Err(error) => {
                tracing::warn!(%error, stream = settings.name, "cannot set the events stream to discard new");
            }
        }
    }
    let found = unsafe_settings(&config, settings);
    if !found.is_empty() {
        let reasons: Vec<String> = found.iter().map(ToString::to_string).collect();
        anyhow::bail!(
            "the events stream {} could lose events, refusing to run against it: {}",
            settings.name,
            reasons.join("; ")
        );
    }
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn safe() -> stream::Config {
        stream::Config {
            name: "ECS_EVENTS".to_owned(),
            subjects: vec![EVENTS_SUBJECTS.to_owned()],
            deny_delete: true,
            deny_purge: true,
            discard: stream::DiscardPolicy::New,
            max_bytes: -1,
            max_messages: -1,
            max_messages_per_subject: -1,
            num_replicas: 1,
            ..Default::default()
        }
    }

    #[test]
    fn the_created_configuration_is_safe() {
        assert_eq!(unsafe_settings(&safe(), &StreamSettings::default()), vec![]);
    }

    #[test]
    fn every_setting_that_could_lose_events_is_named() {
        let settings = StreamSettings {
            replicas: 3,
            ..StreamSettings::default()
        };
        /// A change to a safe configuration, and what it must be refused for.
        type Case = (fn(&mut stream::Config), UnsafeStream);
        let cases: Vec<Case> = vec![
            (|c| c.deny_delete = false, UnsafeStream::DeleteAllowed),
            (|c| c.deny_purge = false, UnsafeStream::PurgeAllowed),
            (|c| c.allow_rollup = true, UnsafeStream::RollupAllowed),
            (
                |c| c.retention = stream::RetentionPolicy::WorkQueue,
                UnsafeStream::Retention(stream::RetentionPolicy::WorkQueue),
            ),
            (
                |c| c.max_age = Duration::from_secs(60),
                UnsafeStream::MaxAge(Duration::from_secs(60)),
            ),
            (|c| c.max_bytes = 10, UnsafeStream::MaxBytes(10)),
            (|c| c.max_messages = 10, UnsafeStream::MaxMessages(10)),
            (
                |c| c.max_messages_per_subject = 1,
                UnsafeStream::MaxMessagesPerSubject(1),
            ),
            (|c| c.allow_message_ttl = true, UnsafeStream::MessageTtl),
            (
                |c| c.discard = stream::DiscardPolicy::Old,
                UnsafeStream::DiscardOld,
            ),
            (
                |c| c.storage = stream::StorageType::Memory,
                UnsafeStream::MemoryStorage,
            ),
        ];
        let mut three = safe();
        three.num_replicas = 3;
        let mut mismatches = Vec::new();
        for (change, expected) in cases {
            let mut config = three.clone();
            change(&mut config);
            let found = unsafe_settings(&config, &settings);
            if found != vec![expected.clone()] {
                mismatches.push(format!("expected [{expected}], found {found:?}"));
            }
        }
        assert_eq!(
            unsafe_settings(&safe(), &settings),
            vec![UnsafeStream::Replicas {
                actual: 1,
                expected: 3
            }]
        );
        assert!(mismatches.is_empty(), "{mismatches:#?}");
    }
}
