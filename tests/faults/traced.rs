//! Traceable writes and the checker that reads them back.
//!
//! Every write is a `PATCH` of one layer carrying a unique id three times: as
//! its `Idempotency-Key`, inside the values (`{"last": id, "seq": n}`) and as
//! its message. Outcomes:
//! * **acknowledged** — a 2xx: it must be stored exactly once;
//! * **rejected** — another 4xx: it must not be stored;
//! * **unavailable** — a 503 (`Retry-After`): by the API's contract the write
//!   may or may not have been stored ("retry with the same Idempotency-Key");
//! * **unknown** — a timeout, a dropped connection or another 5xx.
//!
//! After the faults heal, [`check`] counts every id in each layer's history
//! and in the events stream; [`settle`] then retries every unavailable or
//! unknown write with its original key, and a second [`check`] must find every
//! write exactly once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::harness::{ADMIN_TOKEN, read_stream};

/// Where writes go: a client and the server's base URL (both survive a kill
/// and restart of the server, which keeps its port).
#[derive(Clone)]
pub struct Target {
    pub http: reqwest::Client,
    pub base: String,
}

impl Target {
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN_TOKEN)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Acked { revision: u64, duplicate: bool },
    Rejected { status: u16, code: String },
    Unavailable { retry_after: bool },
    Unknown(String),
}

impl Outcome {
    fn settled(&self) -> bool {
        matches!(self, Outcome::Acked { .. } | Outcome::Rejected { .. })
    }
}

#[derive(Debug, Clone)]
pub struct Write {
    pub id: String,
    /// `/v1/namespaces/<ns>/layer?<scope>`
    pub path: String,
    pub seq: u64,
    /// When it was sent.
    pub started: std::time::Instant,
    pub outcome: Outcome,
    /// The outcome of the retry by [`settle`], if any.
    pub retried: Option<Outcome>,
}

/// Sends one traceable write.
pub async fn send(target: &Target, path: &str, id: &str, seq: u64) -> Outcome {
    let body = json!({"values": {"last": id, "seq": seq}, "message": id});
    let result = target
        .request(Method::PATCH, path)
        .header("Idempotency-Key", id)
        .json(&body)
        .send()
        .await;
    let response = match result {
        Ok(r) => r,
        Err(e) => return Outcome::Unknown(short_error(&e)),
    };
    let status = response.status();
    let retry_after = response.headers().contains_key("retry-after");
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        Outcome::Acked {
            revision: body["revision"].as_u64().unwrap_or(0),
            duplicate: body["duplicate"] == Value::Bool(true),
        }
    } else if status == StatusCode::SERVICE_UNAVAILABLE {
        Outcome::Unavailable { retry_after }
    } else if status.is_client_error() {
        Outcome::Rejected {
            status: status.as_u16(),
            code: body["code"].as_str().unwrap_or_default().to_owned(),
        }
    } else {
        Outcome::Unknown(format!("HTTP {status}: {body}"))
    }
}

fn short_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".to_owned()
    } else if e.is_connect() {
        "connect".to_owned()
    } else {
        "connection dropped".to_owned()
    }
}

/// `count` writers, writer `n` patching the layer `service=w<n>` of `ns` in a
/// loop until `stop` is set, `pause` apart.
pub fn spawn_writers(
    target: &Target,
    ns: &str,
    count: usize,
    prefix: &str,
    stop: &Arc<AtomicBool>,
    pause: Duration,
) -> Vec<JoinHandle<Vec<Write>>> {
    let run = uuid::Uuid::new_v4().simple().to_string();
    (0..count)
        .map(|n| {
            let target = target.clone();
            let stop = stop.clone();
            let path = format!("/v1/namespaces/{ns}/layer?service=w{n}");
            let prefix = format!("{prefix}-{}-w{n}", &run[..8]);
            tokio::spawn(async move {
                let mut writes = vec![];
                let mut seq = 0;
                while !stop.load(Ordering::Relaxed) {
                    seq += 1;
                    let id = format!("{prefix}-{seq}");
                    let started = std::time::Instant::now();
                    let outcome = send(&target, &path, &id, seq).await;
                    let failed = !matches!(outcome, Outcome::Acked { .. });
                    writes.push(Write {
                        id,
                        path: path.clone(),
                        seq,
                        started,
                        outcome,
                        retried: None,
                    });
                    // Back off a little while the server is down.
                    let wait = if failed { pause * 5 } else { pause };
                    tokio::time::sleep(wait).await;
                }
                writes
            })
        })
        .collect()
}

/// Collects the writers' ledgers.
pub async fn join_writers(handles: Vec<JoinHandle<Vec<Write>>>) -> Vec<Write> {
    let mut all = vec![];
    for handle in handles {
        all.extend(handle.await.expect("a writer task"));
    }
    all
}

/// What the checker found.
#[derive(Debug, Default)]
pub struct Findings {
    pub attempted: usize,
    pub acked: usize,
    pub rejected: usize,
    pub unavailable: usize,
    pub unknown: usize,
    /// Unavailable or unknown writes that were stored (fine).
    pub unresolved_landed: usize,
    /// Acknowledged but in neither history nor the stream (must be empty).
    pub lost: Vec<String>,
    /// Stored more than once (must be empty).
    pub duplicated: Vec<(String, usize)>,
    /// Rejected with a 4xx but stored anyway (must be empty).
    pub rejected_landed: Vec<String>,
    /// Acknowledged with a revision other than the one holding the id.
    pub wrong_revision: Vec<String>,
    /// History and stream disagree on an id's count, or history has gaps.
    pub inconsistent: Vec<String>,
}

impl Findings {
    pub fn clean(&self) -> bool {
        self.lost.is_empty()
            && self.duplicated.is_empty()
            && self.rejected_landed.is_empty()
            && self.wrong_revision.is_empty()
            && self.inconsistent.is_empty()
    }

    pub fn summary(&self) -> String {
        format!(
            "attempted {}, acknowledged {}, rejected {}, unavailable(503) {}, unknown {} \
             (of those now stored: {}) | lost {}, duplicated {}, rejected-but-stored {}, \
             wrong revision {}, history/stream inconsistencies {}",
            self.attempted,
            self.acked,
            self.rejected,
            self.unavailable,
            self.unknown,
            self.unresolved_landed,
            self.lost.len(),
            self.duplicated.len(),
            self.rejected_landed.len(),
            self.wrong_revision.len(),
            self.inconsistent.len()
        )
    }

    pub fn details(&self) -> String {
        fn first<T: std::fmt::Debug>(v: &[T]) -> String {
            format!("{:?}", &v[..v.len().min(10)])
        }
        format!(
            "lost {} duplicated {} rejected-but-stored {} wrong revision {} inconsistent {}",
            first(&self.lost),
            first(&self.duplicated),
            first(&self.rejected_landed),
            first(&self.wrong_revision),
            first(&self.inconsistent)
        )
    }
}

/// Reads back every layer the writes touched (history over HTTP) and the
/// events stream, and compares them with the ledger. The effective outcome of
/// a write is its retry's when it was retried.
pub async fn check(target: &Target, nats_url: &str, writes: &[Write]) -> Findings {
    let mut history: HashMap<String, Vec<u64>> = HashMap::new();
    let mut inconsistent = vec![];
    let mut paths: Vec<&str> = writes.iter().map(|w| w.path.as_str()).collect();
    paths.sort_unstable();
    paths.dedup();
    for path in paths {
        let (layer, query) = path.split_once('?').unwrap_or((path, ""));
        // The history comes a page at a time; follow `next_cursor` to its end.
        let mut revisions = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = cursor
                .as_ref()
                .map_or_else(String::new, |c| format!("&cursor={c}"));
            let url = format!("{layer}/history?{query}&limit=1000{page}");
            let response = target
                .request(Method::GET, &url)
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {url}: {e}"));
            let status = response.status();
            if status == StatusCode::NOT_FOUND {
                break; // the layer was never written
            }
            let body: Value = response.json().await.expect("history JSON");
            assert_eq!(status, StatusCode::OK, "GET {url}: {body}");
            revisions.extend(body["revisions"].as_array().cloned().unwrap_or_default());
            match body["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        let (mut last_revision, mut last_position) = (0, 0);
        for r in &revisions {
            let revision = r["revision"].as_u64().unwrap_or(0);
            let position = r["position"].as_u64().unwrap_or(0);
            if revision != last_revision + 1 || position <= last_position {
                inconsistent.push(format!(
                    "{path}: history goes from revision {last_revision} (position \
                     {last_position}) to revision {revision} (position {position})"
                ));
            }
            (last_revision, last_position) = (revision, position);
            if let Some(id) = r["message"].as_str() {
                history.entry(id.to_owned()).or_default().push(revision);
            }
            if r["message"] != r["values"]["last"] {
                inconsistent.push(format!(
                    "{path} revision {revision}: message != values.last"
                ));
            }
        }
    }
    let mut stream: HashMap<String, usize> = HashMap::new();
    for (_, message) in read_stream(nats_url).await {
        if message.aggregate_type != "layer" {
            continue;
        }
        for event in &message.events {
            if let Some(id) = event["LayerChanged"]["message"].as_str() {
                *stream.entry(id.to_owned()).or_default() += 1;
            }
        }
    }

    let mut findings = Findings {
        attempted: writes.len(),
        inconsistent,
        ..Findings::default()
    };
    for write in writes {
        match &write.outcome {
            Outcome::Acked { .. } => findings.acked += 1,
            Outcome::Rejected { .. } => findings.rejected += 1,
            Outcome::Unavailable { .. } => findings.unavailable += 1,
            Outcome::Unknown(_) => findings.unknown += 1,
        }
        let revisions = history.get(&write.id).cloned().unwrap_or_default();
        let in_stream = stream.get(&write.id).copied().unwrap_or(0);
        if revisions.len() != in_stream {
            findings.inconsistent.push(format!(
                "{}: {} time(s) in history, {in_stream} in the stream",
                write.id,
                revisions.len()
            ));
        }
        let count = revisions.len().max(in_stream);
        if count > 1 {
            findings.duplicated.push((write.id.clone(), count));
        }
        let effective = write.retried.as_ref().unwrap_or(&write.outcome);
        match effective {
            Outcome::Acked { revision, .. } => {
                if count == 0 {
                    findings.lost.push(write.id.clone());
                } else if revisions.first() != Some(revision) {
                    findings.wrong_revision.push(format!(
                        "{}: acknowledged as revision {revision}, history has {revisions:?}",
                        write.id
                    ));
                }
            }
            Outcome::Rejected { status, .. } if count > 0 => findings
                .rejected_landed
                .push(format!("{} ({status})", write.id)),
            _ => {}
        }
        if !write.outcome.settled() && count > 0 {
            findings.unresolved_landed += 1;
        }
    }
    findings
}

/// Retries every unavailable or unknown write with its original
/// `Idempotency-Key` until it is acknowledged or rejected. Returns how many
/// were retried and how many of those the server answered as duplicates.
pub async fn settle(target: &Target, writes: &mut [Write]) -> (usize, usize) {
    let (mut retried, mut duplicates) = (0, 0);
    for write in writes.iter_mut().filter(|w| !w.outcome.settled()) {
        retried += 1;
        let mut outcome = Outcome::Unknown("not retried".to_owned());
        for _ in 0..100 {
            outcome = send(target, &write.path, &write.id, write.seq).await;
            if outcome.settled() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if matches!(
            outcome,
            Outcome::Acked {
                duplicate: true,
                ..
            }
        ) {
            duplicates += 1;
        }
        write.retried = Some(outcome);
    }
    (retried, duplicates)
}

/// Histogram of outcomes as `label → count`, for reports.
pub fn histogram<'a>(labels: impl Iterator<Item = &'a str>) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for label in labels {
        *out.entry(label.to_owned()).or_default() += 1;
    }
    out
}

pub fn label(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Acked { .. } => "2xx",
        Outcome::Rejected { .. } => "4xx",
        Outcome::Unavailable { retry_after: true } => "503+Retry-After",
        Outcome::Unavailable { retry_after: false } => "503 without Retry-After",
        Outcome::Unknown(e) if e.starts_with("HTTP") => "other 5xx",
        Outcome::Unknown(_) => "no answer",
    }
}
