//! Executes commands: load, handle, commit, retrying on concurrent appends.

use std::collections::HashMap;

use cqrs_es::{AggregateContext, AggregateError, EventStore};
use tracing::Instrument;

use crate::store::{Addressed, JetStreamStore, MessageTooLarge, meta};

/// How many times a command is re-run when another writer appended to the
/// same aggregate between load and commit.
const MAX_ATTEMPTS: usize = 8;

/// Who sends a command, and its id for de-duplication.
#[derive(Debug, Clone)]
pub struct CommandMeta {
    pub command_id: String,
    pub actor: String,
    /// Recorded with the command's message (for the audit log): the actor's
    /// role, the request and correlation ids.
    pub metadata: HashMap<String, String>,
}

/// The outcome of an accepted command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// The stream sequence of the command's message; for a command that
    /// changed nothing, the position of the aggregate's last message.
    pub position: u64,
    pub revision: u64,
    /// The command id had already been applied; this is that outcome.
    pub duplicate: bool,
    /// The command produced no events.
    pub unchanged: bool,
}

/// Why a command was not applied.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error> {
    /// The aggregate refused the command.
    #[error(transparent)]
    Rejected(E),
    /// Concurrent writers kept winning; the client may retry.
    #[error("too many concurrent changes to the same item; retry")]
    Contended,
    /// The event store could not be reached or did not confirm; the command
    /// may or may not have been stored (retry with the same command id).
    #[error("the event store is unavailable: {0}")]
    Unavailable(String),
    /// The command's message would be larger than the store takes; nothing
    /// was stored.
    #[error(transparent)]
    TooLarge(MessageTooLarge),
}

/// Runs commands against the JetStream event store.
#[derive(Clone)]
pub struct CommandBus {
    js: async_nats::jetstream::Context,
    stream: String,
    keyring: Option<std::sync::Arc<crate::keyring::Keyring>>,
    max_message: Option<usize>,
}

impl CommandBus {
    pub fn new(js: async_nats::jetstream::Context, stream: impl Into<String>) -> Self {
        CommandBus {
            js,
            stream: stream.into(),
            keyring: None,
            max_message: None,
        }
    }

    /// Refuses commands whose message would exceed `limit` bytes (the NATS
    /// server's `max_payload`) with [`CommandError::TooLarge`].
    pub fn with_max_message(mut self, limit: usize) -> Self {
        self.max_message = Some(limit);
        self
    }

    /// Seals tenant data with per-tenant keys (see `keyring`).
    pub fn with_keyring(mut self, keyring: std::sync::Arc<crate::keyring::Keyring>) -> Self {
        self.keyring = Some(keyring);
        self
    }

    pub fn store<A: Addressed>(&self) -> JetStreamStore<A> {
        JetStreamStore::new(self.js.clone(), self.stream.clone(), self.keyring.clone())
            .with_max_message(self.max_message)
    }

    /// The stream position of the aggregate's last message (0 when it has
    /// none).
    pub async fn position_of<A: Addressed>(
        &self,
        aggregate_id: &str,
    ) -> Result<u64, CommandError<A::Error>> {
        let context = self
            .store::<A>()
            .load_aggregate(aggregate_id)
            .await
            .map_err(into_command_error)?;
        Ok(context.last_subject_sequence)
    }

    /// Loads the aggregate, handles the command and appends its events as one
    /// message. When another writer appended first, the command runs again on
    /// the new state (so an expected revision in the command then fails).
    pub async fn execute<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        services: &A::Services,
        meta: &CommandMeta,
    ) -> Result<Committed, CommandError<A::Error>>
    where
        A: Addressed,
        A::Command: Clone,
    {
        let span = tracing::info_span!(
            "command",
            aggregate_type = %A::aggregate_type(),
            aggregate_id,
            command_id = %meta.command_id,
            actor = %meta.actor
        );
        async move {
            let store = self.store::<A>();
            for attempt in 1..=MAX_ATTEMPTS {
                let context = store
                    .load_aggregate(aggregate_id)
                    .await
                    .map_err(into_command_error)?;
                let (revision, position) = (context.revision, context.last_subject_sequence);
                let events = context
                    .aggregate()
                    .handle(command.clone(), services)
                    .await
                    .map_err(CommandError::Rejected)?;
                if events.is_empty() {
                    return Ok(Committed {
                        position,
                        revision,
                        duplicate: false,
                        unchanged: true,
                    });
                }
                let mut metadata = meta.metadata.clone();
                metadata.insert(meta::COMMAND_ID.to_owned(), meta.command_id.clone());
                metadata.insert(meta::ACTOR.to_owned(), meta.actor.clone());
                let append = tracing::info_span!("append", attempt);
                let started = std::time::Instant::now();
                let appended = store
                    .commit(events, context, metadata)
                    .instrument(append)
                    .await;
                metrics::histogram!("ecs_append_duration_seconds")
                    .record(started.elapsed().as_secs_f64());
                match appended {
                    Ok(envelopes) => {
                        let last = envelopes
                            .last()
                            .ok_or_else(|| CommandError::Unavailable("empty commit".into()))?;
                        let number = |key: &str| {
                            last.metadata
                                .get(key)
                                .and_then(|v| v.parse::<u64>().ok())
                                .ok_or_else(|| {
                                    CommandError::Unavailable(format!(
                                        "the event store's answer lacks the {key}"
                                    ))
                                })
                        };
                        let committed = Committed {
                            position: number(meta::POSITION)?,
                            revision: number(meta::REVISION)?,
                            duplicate: last
                                .metadata
                                .get(meta::DUPLICATE)
                                .is_some_and(|d| d == "true"),
                            unchanged: false,
                        };
                        tracing::info!(
                            position = committed.position,
                            revision = committed.revision,
                            duplicate = committed.duplicate,
                            "command accepted"
                        );
                        return Ok(committed);
                    }
                    Err(AggregateError::AggregateConflict) => {
                        tracing::debug!(attempt, "concurrent append; retrying");
                    }
                    Err(e) => return Err(into_command_error(e)),
                }
            }
            Err(CommandError::Contended)
        }
        .instrument(span)
        .await
    }
}

fn into_command_error<E: std::error::Error>(error: AggregateError<E>) -> CommandError<E> {
    match error {
        AggregateError::UserError(e) => CommandError::Rejected(e),
        AggregateError::AggregateConflict => CommandError::Contended,
        AggregateError::UnexpectedError(e) if e.is::<MessageTooLarge>() => {
            match e.downcast::<MessageTooLarge>() {
                Ok(too_large) => CommandError::TooLarge(*too_large),
                Err(e) => CommandError::Unavailable(e.to_string()),
            }
        }
        other => CommandError::Unavailable(other.to_string()),
    }
}
