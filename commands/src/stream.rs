//! The events stream: created on start when absent.

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

/// Creates the events stream unless it exists: file storage, delete and purge
/// denied (history is immutable), direct gets allowed (loading an aggregate
/// reads only its last message), kept forever.
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
        ..Default::default()
    };
    let stream = js.get_or_create_stream(config).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot create or open the events stream {}: {e}",
            settings.name
        )
    })?;
    Ok(stream)
}
