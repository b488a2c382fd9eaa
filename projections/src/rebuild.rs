//! Rebuilding the projections without ever serving half-built tables.
//!
//! A rebuild replays the events stream from its start into fresh tables in
//! the schema [`SHADOW_SCHEMA`], made by the same migrations as the current
//! ones, while the current tables keep answering reads and following the
//! stream. Once the fresh tables have caught up, one transaction locks the
//! projection's offset (so the projector pauses), applies to the fresh tables
//! the few messages the current ones received meanwhile, copies the audit
//! entries that are not projected from the events stream (refused attempts,
//! skips) and moves the fresh tables in place of the current ones. Readers
//! see the old tables or the new ones, never a mix (ADR 10).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig};
use ecs_commands::keyring::Keyring;
use futures::{FutureExt, StreamExt};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::apply::TABLES;
use crate::audit::KEPT_ACROSS_REBUILDS;
use crate::batch::{Applied, MAX_BATCH, apply_batch};
use crate::halt::ProjectionName;
use crate::offsets;
use crate::status::ProjectionStatus;

/// Where a rebuild builds its fresh tables.
pub const SHADOW_SCHEMA: &str = "ecs_rebuild";

/// How many times the switch is tried before the rebuild gives up.
const SWITCH_ATTEMPTS: u32 = 5;

/// Where the replaced tables go for the moment of the switch.
const RETIRED_SCHEMA: &str = "ecs_retired";

/// The tables a rebuild replaces: every projection table, and the audit log
/// (whose entries not projected from the events stream are carried over).
fn replaced_tables() -> impl Iterator<Item = &'static str> {
    TABLES.iter().copied().chain(["audit"])
}

/// A rebuild in progress.
pub(crate) struct Rebuild {
    pub pool: PgPool,
    pub js: jetstream::Context,
    pub stream: String,
    pub keyring: Option<Arc<Keyring>>,
    pub status: Arc<watch::Sender<ProjectionStatus>>,
}

impl Rebuild {
    /// Replays the stream up to at least `target` into fresh tables and
    /// switches them in; on failure the current tables stay as they are.
    pub async fn run(self, target: u64, shutdown: CancellationToken) {
        match self.build(target, &shutdown).await {
            Ok(position) => tracing::info!(position, "rebuilt projections switched in"),
            Err(error) => {
                metrics::counter!("ecs_projection_rebuilds_failed_total").increment(1);
                tracing::error!(
                    error = format!("{error:#}"),
                    "the rebuild failed; the current projections stay in place"
                );
            }
        }
        if let Err(error) = drop_schemas(&self.pool).await {
            tracing::warn!(%error, "cannot drop the rebuild's leftover tables");
        }
        self.status.send_modify(|s| {
            s.rebuilding = false;
            s.rebuild = None;
        });
    }

    async fn build(&self, target: u64, shutdown: &CancellationToken) -> anyhow::Result<u64> {
        tracing::info!(target, "rebuilding projections into fresh tables");
        let live = prepare(&self.pool)
            .await
            .context("cannot create the rebuild's tables")?;
        let mut offset = 0;
        if target > 0 {
            offset = self.replay(target, shutdown).await?;
        }
        // The switch waits for readers of the tables it moves and may meet
        // one in a deadlock (PostgreSQL then aborts it, changing nothing):
        // try again a few times.
        let mut attempt = 1;
        loop {
            match self.switch(&live, offset).await {
                Err(error) if attempt < SWITCH_ATTEMPTS && !shutdown.is_cancelled() => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        attempt,
                        "cannot switch the rebuilt tables in yet; trying again"
                    );
                    tokio::time::sleep(Duration::from_millis(200) * attempt).await;
                    attempt += 1;
                }
                switched => return switched,
            }
        }
    }

    /// Applies the stream from its start to the fresh tables until they
    /// hold `target` and nothing more has arrived; answers their position.
    async fn replay(&self, target: u64, shutdown: &CancellationToken) -> anyhow::Result<u64> {
        let stream = self.js.get_stream(&self.stream).await?;
        let consumer = stream
            .create_consumer(OrderedConfig {
                deliver_policy: DeliverPolicy::All,
                ..Default::default()
            })
            .await?;
        let mut messages = consumer.messages().await?;
        let mut offset = 0;
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => anyhow::bail!("shutting down"),
                message = messages.next() => message,
            };
            let message = message.context("the events stream consumer ended")??;
            let mut batch = vec![message];
            while batch.len() < MAX_BATCH {
                match messages.next().now_or_never() {
                    Some(Some(next)) => batch.push(next?),
                    _ => break,
                }
            }
            let mut work = Vec::with_capacity(batch.len());
            let mut pending = 0;
            for message in &batch {
                let info = message.info().map_err(|e| anyhow::anyhow!("{e}"))?;
                pending = info.pending;
                work.push((info.stream_sequence, message.payload.clone()));
            }
            let last = work.last().map_or(offset, |(p, _)| *p);
            let mut tx = shadow_transaction(&self.pool).await?;
            self.apply(&mut tx, &work).await?;
            tx.commit().await?;
            offset = last;
            self.status.send_modify(|s| {
                if let Some(progress) = &mut s.rebuild {
                    progress.applied = offset;
                }
            });
            if pending == 0 && offset >= target {
                return Ok(offset);
            }
        }
    }

    /// Applies `batch` to the fresh tables in `tx`; a message the rebuild
    /// cannot read (and no operator skipped) fails the rebuild.
    async fn apply(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        batch: &[(u64, bytes::Bytes)],
    ) -> anyhow::Result<()> {
        match apply_batch(&self.pool, tx, batch, self.keyring.as_deref()).await? {
            Applied::Through => Ok(()),
            Applied::Behind => anyhow::bail!(
                "the rebuild's tables are behind position {}",
                batch.first().map_or(0, |(p, _)| *p)
            ),
            Applied::Unreadable { position, error } => {
                anyhow::bail!("the message at position {position} cannot be read: {error}")
            }
        }
    }

    /// In one transaction: pauses the projector (its offset row locked),
    /// brings the fresh tables to the current tables' position, carries the
    /// audit entries over and moves the fresh tables in.
    async fn switch(&self, live: &str, shadow: u64) -> anyhow::Result<u64> {
        let mut tx = self.pool.begin().await?;
        // Never queue for long behind a reader: everyone else would queue
        // behind the switch meanwhile.
        sqlx::query("SET LOCAL lock_timeout = '5s'")
            .execute(&mut *tx)
            .await?;
        let current = offsets::lock(&mut tx, ProjectionName::Config).await?;
        offsets::lock(&mut tx, ProjectionName::Audit).await?;
        set_search_path(&mut tx, SHADOW_SCHEMA).await?;
        if current > shadow {
            let missing = self.read(shadow + 1, current).await?;
            self.apply(&mut tx, &missing).await?;
        }
        let live = quoted(live);
        sqlx::query(&format!(
            "INSERT INTO {SHADOW_SCHEMA}.audit SELECT * FROM {live}.audit
             WHERE {KEPT_ACROSS_REBUILDS} ON CONFLICT DO NOTHING"
        ))
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!("CREATE SCHEMA {RETIRED_SCHEMA}"))
            .execute(&mut *tx)
            .await?;
        for table in replaced_tables() {
            sqlx::query(&format!(
                "ALTER TABLE {live}.{table} SET SCHEMA {RETIRED_SCHEMA}"
            ))
            .execute(&mut *tx)
            .await?;
            sqlx::query(&format!(
                "ALTER TABLE {SHADOW_SCHEMA}.{table} SET SCHEMA {live}"
            ))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(current.max(shadow))
    }

    /// The raw messages at positions `from..=to`.
    async fn read(&self, from: u64, to: u64) -> anyhow::Result<Vec<(u64, bytes::Bytes)>> {
        let stream = self.js.get_stream(&self.stream).await?;
        let mut messages = Vec::with_capacity((to - from + 1) as usize);
        for position in from..=to {
            let message = stream
                .get_raw_message(position)
                .await
                .with_context(|| format!("cannot read position {position}"))?;
            messages.push((position, message.payload));
        }
        Ok(messages)
    }
}

/// Creates the fresh tables with the migrations, in [`SHADOW_SCHEMA`] (after
/// dropping what an interrupted rebuild left); answers the current tables'
/// schema.
async fn prepare(pool: &PgPool) -> anyhow::Result<String> {
    drop_schemas(pool).await?;
    let live: String = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(pool)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA {SHADOW_SCHEMA}"))
        .execute(pool)
        .await?;
    // A pool of its own, whose one connection's search path points at the
    // fresh tables, so the migrations create them there.
    let options = (*pool.connect_options())
        .clone()
        .options([("search_path", SHADOW_SCHEMA)]);
    let shadow = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?;
    let migrated = crate::migrator().run(&shadow).await;
    shadow.close().await;
    migrated?;
    Ok(live)
}

async fn drop_schemas(pool: &PgPool) -> sqlx::Result<()> {
    for schema in [SHADOW_SCHEMA, RETIRED_SCHEMA] {
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// A transaction whose statements read and write the fresh tables.
async fn shadow_transaction(pool: &PgPool) -> sqlx::Result<Transaction<'static, Postgres>> {
    let mut tx = pool.begin().await?;
    set_search_path(&mut tx, SHADOW_SCHEMA).await?;
    Ok(tx)
}

/// Points unqualified table names at `schema` until the transaction ends.
async fn set_search_path(tx: &mut Transaction<'_, Postgres>, schema: &str) -> sqlx::Result<()> {
    sqlx::query(&format!("SET LOCAL search_path TO {schema}"))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// An identifier quoted for SQL.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
