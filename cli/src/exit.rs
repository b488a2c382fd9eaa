//! Exit codes and the errors that lead to them.
//!
//! Scripts branch on the exit code, so every failure maps to exactly one code
//! and the codes never change meaning (see `docs/cli.md`).

use serde_json::Value;

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done; for `apply`, `diff` and `promote`: nothing differs.
    Success,
    /// An unexpected failure (a local file could not be written, a bad answer).
    Failure,
    /// `apply` without `--yes`, `diff` and `promote` without `--yes`: there are changes.
    Changes,
    /// The namespace, tenant, layer, revision or change request does not exist (404).
    NotFound,
    /// Someone else changed the item first (412, 409): re-read and retry.
    Conflict,
    /// The change was refused as invalid (422: schema violation, lock; 413).
    Invalid,
    /// No valid credential (401) or not allowed (403).
    Denied,
    /// The server is unreachable or unavailable (503): retry later.
    Unavailable,
    /// The command line or an input file is wrong (also the server's 400).
    Usage,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> i32 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Changes => 2,
            Exit::NotFound => 3,
            Exit::Conflict => 4,
            Exit::Invalid => 5,
            Exit::Denied => 6,
            Exit::Unavailable => 7,
            Exit::Usage => 64,
        }
    }

    /// The exit for an HTTP error status.
    pub fn of_status(status: u16) -> Exit {
        match status {
            400 | 405 | 415 => Exit::Usage,
            401 | 403 => Exit::Denied,
            404 => Exit::NotFound,
            409 | 412 => Exit::Conflict,
            413 | 422 => Exit::Invalid,
            502..=504 => Exit::Unavailable,
            _ => Exit::Failure,
        }
    }
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line or an input file is wrong.
    #[error("{0}")]
    Usage(String),
    /// The server refused the request: its status and problem document.
    #[error("the server answered {status}")]
    Api { status: u16, problem: Value },
    /// The server could not be reached or answered unusably.
    #[error("{0}")]
    Unavailable(String),
    /// A concurrent change was detected by the command itself.
    #[error("{0}")]
    Conflict(String),
    /// Anything else.
    #[error("{0}")]
    Failure(String),
}

impl CliError {
    pub fn usage(message: impl Into<String>) -> Self {
        CliError::Usage(message.into())
    }

    pub fn failure(message: impl Into<String>) -> Self {
        CliError::Failure(message.into())
    }

    /// The exit code this error ends the process with.
    pub fn exit(&self) -> Exit {
        match self {
            CliError::Usage(_) => Exit::Usage,
            CliError::Api { status, .. } => Exit::of_status(*status),
            CliError::Unavailable(_) => Exit::Unavailable,
            CliError::Conflict(_) => Exit::Conflict,
            CliError::Failure(_) => Exit::Failure,
        }
    }

    /// The HTTP status, when the server refused.
    pub fn status(&self) -> Option<u16> {
        match self {
            CliError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The lines printed on standard error: the problem's title, detail and
    /// field, and every violation with its JSON pointer.
    pub fn describe(&self) -> Vec<String> {
        let CliError::Api { status, problem } = self else {
            return vec![format!("error: {self}")];
        };
        let text = |key: &str| problem.get(key).and_then(Value::as_str).unwrap_or("");
        let mut lines = vec![format!(
            "error: {status} {}: {}",
            text("code"),
            if text("detail").is_empty() {
                text("title")
            } else {
                text("detail")
            }
        )];
        if !text("field").is_empty() {
            lines.push(format!("  field: {}", text("field")));
        }
        if let Some(current) = problem.get("current_revision") {
            lines.push(format!("  current revision: {current}"));
        }
        for violation in problem
            .get("violations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let get = |key: &str| violation.get(key).and_then(Value::as_str).unwrap_or("");
            let mut line = format!("  {}: {}", get("pointer"), get("message"));
            if !get("locked_pointer").is_empty() {
                line = format!(
                    "  {}: locked at {} by {}",
                    get("pointer"),
                    get("locked_pointer"),
                    violation
                        .get("locked_by")
                        .map(|by| match crate::scope::Scope::from_json(by) {
                            Some(scope) => scope.to_string(),
                            None => by.to_string(),
                        })
                        .unwrap_or_default()
                );
            }
            if let Some(layer) = violation.get("layer") {
                line.push_str(&format!(" (layer {layer})"));
            }
            lines.push(line);
        }
        lines
    }
}

pub type CliResult<T> = Result<T, CliError>;
