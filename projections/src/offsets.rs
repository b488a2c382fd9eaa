//! `projection_offsets`: the last stream position each projection applied,
//! moved forward in the same transaction as the rows it applied.

use sqlx::{Postgres, Transaction};

use crate::halt::ProjectionName;

/// The last position `projection` applied, locked for update until the
/// transaction ends.
pub async fn lock(
    tx: &mut Transaction<'_, Postgres>,
    projection: ProjectionName,
) -> sqlx::Result<u64> {
    sqlx::query("INSERT INTO projection_offsets (name, last_position) VALUES ($1, 0) ON CONFLICT DO NOTHING")
        .bind(projection.as_str())
        .execute(&mut **tx)
        .await?;
    let last: i64 = sqlx::query_scalar(
        "SELECT last_position FROM projection_offsets WHERE name = $1 FOR UPDATE",
    )
    .bind(projection.as_str())
    .fetch_one(&mut **tx)
    .await?;
    Ok(last as u64)
}

/// Records that `projection` applied everything up to `position`.
pub async fn set(
    tx: &mut Transaction<'_, Postgres>,
    projection: ProjectionName,
    position: u64,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE projection_offsets SET last_position = $2 WHERE name = $1")
        .bind(projection.as_str())
        .bind(position as i64)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
