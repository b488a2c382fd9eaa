//! Reading and applying a batch of consecutive events-stream messages in one
//! transaction: the projector's step, and a rebuild's.

use ecs_commands::keyring::Keyring;
use ecs_commands::message::read_message;
use sqlx::{PgPool, Postgres, Transaction};

use crate::apply::apply_messages;
use crate::halt::{ProjectionName, skip_recorded};
use crate::offsets;

/// The most messages applied in one transaction.
pub(crate) const MAX_BATCH: usize = 1024;

/// What applying a batch came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Applied {
    /// Every message of the batch took effect (or was already applied).
    Through,
    /// The stored offset is behind the batch (PostgreSQL lost recent
    /// commits): nothing changed; follow again from the offset.
    Behind,
    /// The messages before `position` took effect; the one at `position`
    /// cannot be read and no skip of it is recorded.
    Unreadable { position: u64, error: String },
}

/// Applies consecutive messages and the new offset in `tx` (whose search
/// path picks the tables: the current ones, or a rebuild's fresh ones). A
/// message that cannot be read ends the batch before it, unless an operator
/// recorded a skip of its position (`projection_skips`, read through `pool`).
pub(crate) async fn apply_batch(
    pool: &PgPool,
    tx: &mut Transaction<'_, Postgres>,
    batch: &[(u64, bytes::Bytes)],
    keyring: Option<&Keyring>,
) -> anyhow::Result<Applied> {
    let last = offsets::lock(tx, ProjectionName::Config).await?;
    if batch.first().is_some_and(|(first, _)| *first > last + 1) {
        return Ok(Applied::Behind);
    }
    let mut applied = last;
    let mut messages = Vec::with_capacity(batch.len());
    let mut outcome = Applied::Through;
    for (position, payload) in batch {
        if *position <= last {
            continue;
        }
        match read_message(payload, keyring).await {
            Ok((message, events)) => messages.push((*position, message, events)),
            Err(error) if error.is_transient() => return Err(error.into()),
            Err(error) => match skip_recorded(pool, ProjectionName::Config, *position).await? {
                Some(by) => {
                    metrics::counter!("ecs_projection_messages_skipped_total").increment(1);
                    tracing::warn!(%error, position, skipped_by = by, "skipping an unreadable message as recorded");
                }
                None => {
                    outcome = Applied::Unreadable {
                        position: *position,
                        error: error.to_string(),
                    };
                    break;
                }
            },
        }
        applied = *position;
    }
    apply_messages(tx, &messages).await?;
    if applied > last {
        offsets::set(tx, ProjectionName::Config, applied).await?;
    }
    Ok(outcome)
}
