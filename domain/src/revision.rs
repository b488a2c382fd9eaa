//! Optimistic concurrency: a command may name the revision it expects.

use crate::error::DomainError;

/// Refuses a command whose expected revision is not the aggregate's.
pub(crate) fn check_expected(expected: Option<u64>, actual: u64) -> Result<(), DomainError> {
    match expected {
        Some(expected) if expected != actual => {
            Err(DomainError::StaleRevision { expected, actual })
        }
        _ => Ok(()),
    }
}
