//! Read transactions that finish even when their caller goes away.
//!
//! A request handler's future is dropped when its client disconnects (an
//! event stream closed, a request timed out). Dropped halfway through
//! `BEGIN` or a query, a transaction can go back to the pool still open, and
//! the next reader of that connection then runs inside it (PostgreSQL: "there
//! is already a transaction in progress"). Multi-statement reads therefore
//! run in a task of their own, which completes (and commits or rolls back)
//! whatever happens to the caller.

use std::future::Future;

/// Runs `work` in a task of its own and waits for it.
pub(crate) async fn detached<T, F>(work: F) -> sqlx::Result<T>
where
    T: Send + 'static,
    F: Future<Output = sqlx::Result<T>> + Send + 'static,
{
    tokio::spawn(work)
        .await
        .map_err(|error| sqlx::Error::Io(std::io::Error::other(error)))?
}
