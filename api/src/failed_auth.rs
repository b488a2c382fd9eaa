//! Failed authentications are counted, not written one by one: each source
//! address and reason gets one audit record per window
//! (`ECS_AUTH_FAILURE_WINDOW_SECS`) carrying how many attempts it stands for,
//! so a caller without a credential cannot grow the audit stream at the rate
//! of its requests.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use time::OffsetDateTime;

use crate::audit::RequestFacts;
use crate::auth::AuthFailure;

/// Where failed attempts came from: the peer address, when known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Address(IpAddr),
    /// No peer address (a router called without a listener, as in tests),
    /// or more sources in one window than are tallied apart.
    Other,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Address(ip) => write!(f, "{ip}"),
            Source::Other => f.write_str("other sources"),
        }
    }
}

/// The failed attempts of one source for one reason in the current window.
#[derive(Debug, Clone)]
pub struct Tally {
    pub source: Source,
    /// The reason's stable name (`AuthFailure::code`).
    pub reason: &'static str,
    /// The first attempt's reason in words, and what it asked for.
    pub detail: String,
    pub first: RequestFacts,
    pub count: u64,
    pub since: OffsetDateTime,
    pub until: OffsetDateTime,
}

/// The tallies of the current window.
#[derive(Debug, Default)]
pub struct FailedAuthentications {
    tallies: Mutex<HashMap<(Source, &'static str), Tally>>,
}

impl FailedAuthentications {
    /// Distinct sources and reasons tallied apart in one window; beyond it,
    /// attempts are tallied under [`Source::Other`], so memory stays bounded
    /// whatever the number of addresses a caller uses.
    pub const MAX_TALLIES: usize = 10_000;

    /// Counts one failed attempt.
    pub fn note(&self, source: Source, failure: &AuthFailure, facts: RequestFacts) {
        let now = OffsetDateTime::now_utc();
        let reason = failure.code();
        let mut tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        let key = if tallies.len() >= Self::MAX_TALLIES && !tallies.contains_key(&(source, reason))
        {
            (Source::Other, reason)
        } else {
            (source, reason)
        };
        tallies
            .entry(key)
            .and_modify(|t| {
                t.count += 1;
                t.until = now;
            })
            .or_insert_with(|| Tally {
                source: key.0,
                reason,
                detail: failure.to_string(),
                first: facts,
                count: 1,
                since: now,
                until: now,
            });
    }

    /// The window's tallies; the next window starts empty.
    pub fn take(&self) -> Vec<Tally> {
        let mut tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *tallies).into_values().collect()
    }
}
