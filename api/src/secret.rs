//! Secret settings: values that must never be printed. A [`Secret`] prints as
//! `***` in `Debug`; a [`ConnectionUrl`] prints with its password (or NATS
//! token) replaced by `***`; [`Redactor`] removes every secret value from a
//! free-form message such as a start-up error, whatever library wrote it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a redacted secret prints as.
pub const REDACTED: &str = "***";

/// A secret value (a token or a key). Its `Debug` never shows the value and it
/// has no `Display`, so it cannot reach a log line or a message by accident;
/// `expose` (or `Deref`) is the one way to read it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl std::ops::Deref for Secret {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

/// A connection URL (or comma-separated URLs) that may carry credentials:
/// `Debug` and `Display` show it with every password and NATS token replaced
/// by `***`; `expose` gives the URL to connect with.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConnectionUrl(String);

impl ConnectionUrl {
    pub fn new(url: impl Into<String>) -> Self {
        ConnectionUrl(url.into())
    }

    /// The URL with its credentials, for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The secret parts of the URL: passwords, NATS tokens and `password=`
    /// query parameters.
    pub fn secrets(&self) -> Vec<String> {
        self.0.split(',').flat_map(url_secrets).collect()
    }
}

impl fmt::Display for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

impl fmt::Debug for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", redact_url(&self.0))
    }
}

impl From<String> for ConnectionUrl {
    fn from(value: String) -> Self {
        ConnectionUrl(value)
    }
}

impl From<&str> for ConnectionUrl {
    fn from(value: &str) -> Self {
        ConnectionUrl(value.to_owned())
    }
}

/// Schemes whose user-info without a colon is a token (NATS), not a user name.
fn token_scheme(scheme: &str) -> bool {
    matches!(scheme, "nats" | "tls" | "ws" | "wss")
}

/// The secret parts of one URL.
fn url_secrets(url: &str) -> Vec<String> {
    let url = url.trim();
    let mut found = vec![];
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            match userinfo.split_once(':') {
                Some((_, password)) if !password.is_empty() => found.push(password.to_owned()),
                None if token_scheme(scheme) && !userinfo.is_empty() => {
                    found.push(userinfo.to_owned());
                }
                _ => {}
            }
        }
    }
    if let Some((_, query)) = url.split_once('?') {
        for pair in query.split('&') {
            if let Some((key, value)) = pair.split_once('=')
                && key.eq_ignore_ascii_case("password")
                && !value.is_empty()
            {
                found.push(value.to_owned());
            }
        }
    }
    found
}

/// One URL (or comma-separated URLs) with its secrets replaced by `***`.
pub fn redact_url(urls: &str) -> String {
    urls.split(',')
        .map(|url| {
            let mut out = url.to_owned();
            for secret in url_secrets(url) {
                out = out.replace(&secret, REDACTED);
            }
            out
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Removes known secret values from free-form text (an error chain, a log
/// message) before it is printed.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// Secrets shorter than this are not searched for: replacing every `a`
    /// of a message would hide it without protecting anything.
    const SHORTEST: usize = 4;

    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .filter(|s| s.len() >= Self::SHORTEST)
            .collect();
        // The longest first, so a secret containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            out = out.replace(secret.as_str(), REDACTED);
        }
        out
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_passwords_and_tokens() {
        let cases = [
            (
                "postgres://ecs:s3cret@db:5432/ecs",
                "postgres://ecs:***@db:5432/ecs",
            ),
            ("postgres://ecs@db/ecs", "postgres://ecs@db/ecs"),
            (
                "postgres://db/ecs?user=ecs&password=s3cret",
                "postgres://db/ecs?user=ecs&password=***",
            ),
            ("nats://t0ken@n1:4222", "nats://***@n1:4222"),
            (
                "nats://u:p4ss@n1:4222,nats://u:p4ss@n2:4222",
                "nats://u:***@n1:4222,nats://u:***@n2:4222",
            ),
            ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
        ];
        for (url, expected) in cases {
            assert_eq!(redact_url(url), expected, "{url}");
            assert_eq!(ConnectionUrl::from(url).to_string(), expected);
            assert!(!format!("{:?}", ConnectionUrl::from(url)).contains("s3cret"));
        }
    }

    #[test]
    fn a_secret_never_debugs_its_value() {
        let secret = Secret::from("hunter2-hunter2");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert_eq!(secret.expose(), "hunter2-hunter2");
    }

    #[test]
    fn the_redactor_removes_every_known_secret() {
        let redactor = Redactor::new(["hunter2".to_owned(), "abc".to_owned()]);
        assert_eq!(
            redactor.redact("password hunter2 rejected; abc stays"),
            "password *** rejected; abc stays"
        );
    }
}
