//! Key reads, counted where the application reads (ADR 25): one atomic
//! increment per key under a shared lock, a map entry only on a key's first
//! read. [`ReadCounter::take`] hands the counts to the next report and starts
//! again from zero.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use ecs_domain::NamespaceName;
use ecs_domain::drift::KeyReads;

/// Reads per namespace and key since the last report.
#[derive(Default)]
pub struct ReadCounter {
    counts: RwLock<HashMap<NamespaceName, HashMap<String, AtomicU64>>>,
}

impl ReadCounter {
    /// Counts one read of each key.
    pub fn count<'a>(&self, namespace: &NamespaceName, keys: impl IntoIterator<Item = &'a str>) {
        let mut missing = Vec::new();
        {
            let counts = self.counts.read().unwrap_or_else(|e| e.into_inner());
            let known = counts.get(namespace);
            for key in keys {
                match known.and_then(|k| k.get(key)) {
                    Some(count) => {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    None => missing.push(key.to_owned()),
                }
            }
        }
        if missing.is_empty() {
            return;
        }
        let mut counts = self.counts.write().unwrap_or_else(|e| e.into_inner());
        let known = counts.entry(namespace.clone()).or_default();
        for key in missing {
            if known.len() >= ecs_domain::drift::MAX_READS
                || key.is_empty()
                || key.len() > ecs_domain::drift::MAX_KEY_LEN
            {
                continue;
            }
            known
                .entry(key)
                .or_default()
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counts since the last call (keys read at least once), reset.
    pub fn take(&self) -> Vec<KeyReads> {
        let counts = self.counts.read().unwrap_or_else(|e| e.into_inner());
        let mut reads = Vec::new();
        for (namespace, keys) in counts.iter() {
            for (key, count) in keys {
                let n = count.swap(0, Ordering::Relaxed);
                if n > 0 && reads.len() < ecs_domain::drift::MAX_READS {
                    reads.push(KeyReads {
                        namespace: namespace.clone(),
                        key: key.clone(),
                        reads: n,
                    });
                }
            }
        }
        reads
    }

    /// Puts counts back that could not be sent, so the next report has them.
    pub fn restore(&self, reads: Vec<KeyReads>) {
        let mut counts = self.counts.write().unwrap_or_else(|e| e.into_inner());
        for read in reads {
            counts
                .entry(read.namespace)
                .or_default()
                .entry(read.key)
                .or_default()
                .fetch_add(read.reads, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_counted_per_key_and_taken_once() {
        let counter = ReadCounter::default();
        let ns = NamespaceName::parse("checkout").unwrap();
        counter.count(&ns, ["limit", "mode"]);
        counter.count(&ns, ["limit"]);
        let mut taken = counter.take();
        taken.sort_by(|a, b| a.key.cmp(&b.key));
        let pairs: Vec<(&str, u64)> = taken.iter().map(|r| (r.key.as_str(), r.reads)).collect();
        assert_eq!(pairs, [("limit", 2), ("mode", 1)]);
        assert!(counter.take().is_empty());
        counter.restore(taken);
        assert_eq!(counter.take().len(), 2);
    }
}
