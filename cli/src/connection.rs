//! Where the server is and who we are: `--url`, `--token`, profiles, and the
//! HTTP client that turns problem documents into [`CliError`]s.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::exit::{CliError, CliResult};

/// The quickstart's server (`deploy/run.sh`).
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";
/// The admin token file the quickstart writes.
pub const DEFAULT_TOKEN_FILE: &str = ".ecs/run/admin-token";

/// Connection options, accepted before or after any subcommand.
#[derive(Debug, Clone, Default, Args)]
pub struct Connection {
    /// The ECS server [default: the profile's, else http://127.0.0.1:8080].
    #[arg(long, env = "ECS_URL", global = true)]
    pub url: Option<String>,
    /// A bearer token (API key, JWT or the admin token).
    #[arg(long, env = "ECS_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// A file holding the token [default: the profile's, else .ecs/run/admin-token].
    #[arg(long, env = "ECS_TOKEN_FILE", global = true)]
    pub token_file: Option<PathBuf>,
    /// A profile of the CLI configuration file.
    #[arg(long, env = "ECS_PROFILE", global = true)]
    pub profile: Option<String>,
    /// The CLI configuration file [default: ~/.config/ecs/cli.toml].
    #[arg(long, env = "ECS_CLI_CONFIG", global = true)]
    pub cli_config: Option<PathBuf>,
}

/// One `[profiles.NAME]` table of the configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    url: Option<String>,
    token: Option<String>,
    token_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
struct ProfileFile {
    #[serde(default)]
    default_profile: Option<String>,
    #[serde(default)]
    profiles: std::collections::BTreeMap<String, Profile>,
}

impl Connection {
    fn config_path(&self) -> Option<PathBuf> {
        self.cli_config.clone().or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config/ecs/cli.toml"))
        })
    }

    /// The profile named by `--profile` (an error when it does not exist), or
    /// the file's default profile, or none.
    fn profile(&self) -> CliResult<Profile> {
        let Some(path) = self.config_path() else {
            return Ok(Profile::default());
        };
        if !path.exists() {
            return match &self.profile {
                Some(name) => Err(CliError::usage(format!(
                    "--profile {name}: {} does not exist",
                    path.display()
                ))),
                None => Ok(Profile::default()),
            };
        }
        let mut file: ProfileFile = figment::Figment::from(
            <figment::providers::Toml as figment::providers::Format>::file(&path),
        )
        .extract()
        .map_err(|e| CliError::usage(format!("{}: {e}", path.display())))?;
        let Some(name) = self.profile.clone().or(file.default_profile.clone()) else {
            return Ok(Profile::default());
        };
        file.profiles.remove(&name).ok_or_else(|| {
            CliError::usage(format!(
                "--profile {name}: no such profile in {}",
                path.display()
            ))
        })
    }

    /// The client: flags and environment first, then the profile, then the
    /// quickstart's defaults.
    pub fn connect(&self) -> CliResult<Api> {
        let profile = self.profile()?;
        let url = self
            .url
            .clone()
            .or(profile.url)
            .unwrap_or_else(|| DEFAULT_URL.to_owned());
        let token = match (
            &self.token,
            &self.token_file,
            profile.token,
            profile.token_file,
        ) {
            (Some(token), ..) => Some(token.clone()),
            (None, Some(file), ..) => Some(read_token(file)?),
            (None, None, Some(token), _) => Some(token),
            (None, None, None, Some(file)) => Some(read_token(&file)?),
            (None, None, None, None) => {
                let file = PathBuf::from(DEFAULT_TOKEN_FILE);
                if file.exists() {
                    Some(read_token(&file)?)
                } else {
                    None
                }
            }
        };
        Api::new(&url, token)
    }
}

fn read_token(path: &PathBuf) -> CliResult<String> {
    std::fs::read_to_string(path)
        .map(|t| t.trim().to_owned())
        .map_err(|e| CliError::usage(format!("--token-file {}: {e}", path.display())))
}

/// A successful answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

/// A request's optional parts.
#[derive(Debug, Default)]
pub struct Send<'a> {
    pub query: &'a [(String, String)],
    pub body: Option<&'a Value>,
    /// `If-Match: "<revision>"` (0: only if it does not exist yet).
    pub if_match: Option<u64>,
}

/// The HTTP API client.
///
/// Read-your-writes across instances: it remembers the highest `position`
/// a write answered, and every read after it sends `ECS-Min-Position`, so
/// whichever instance serves the read answers once it has applied the write.
#[derive(Debug, Clone)]
pub struct Api {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
    written: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Api {
    pub fn new(url: &str, token: Option<String>) -> CliResult<Self> {
        let base = url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(CliError::usage(format!(
                "--url {url}: must start with http:// or https://"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| CliError::failure(e.to_string()))?;
        Ok(Api {
            base,
            token,
            http,
            written: std::sync::Arc::default(),
        })
    }

    /// The highest stream position a write of this client was answered at.
    pub fn written(&self) -> u64 {
        self.written.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// A request builder with the credential.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends a request; a non-2xx answer becomes [`CliError::Api`].
    pub async fn send(&self, method: Method, path: &str, options: Send<'_>) -> CliResult<Reply> {
        let read = method == Method::GET;
        let mut request = self.request(method, path).query(options.query);
        let written = self.written();
        if read && written > 0 {
            request = request.header("ECS-Min-Position", written.to_string());
        }
        if let Some(body) = options.body {
            request = request.json(body);
        }
        if let Some(revision) = options.if_match {
            request = request.header("If-Match", format!("\"{revision}\""));
        }
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        if status.is_success() {
            if !read && let Some(position) = body.get("position").and_then(Value::as_u64) {
                self.written
                    .fetch_max(position, std::sync::atomic::Ordering::SeqCst);
            }
            return Ok(Reply {
                status: status.as_u16(),
                body,
            });
        }
        Err(CliError::Api {
            status: status.as_u16(),
            problem: problem_of(status, body),
        })
    }

    pub async fn get(&self, path: &str, query: &[(String, String)]) -> CliResult<Value> {
        Ok(self
            .send(
                Method::GET,
                path,
                Send {
                    query,
                    ..Send::default()
                },
            )
            .await?
            .body)
    }
}

/// A problem document, made up when the server did not send one (a proxy's
/// HTML page, an empty 502).
fn problem_of(status: StatusCode, body: Value) -> Value {
    if body.get("code").is_some() {
        return body;
    }
    serde_json::json!({
        "status": status.as_u16(),
        "code": status.canonical_reason().unwrap_or("error").to_lowercase().replace(' ', "-"),
        "detail": body.as_str().map(str::trim).filter(|s| !s.is_empty()).unwrap_or("no problem document"),
    })
}

fn unreachable(error: reqwest::Error) -> CliError {
    CliError::Unavailable(format!("the server is unreachable: {error}"))
}

/// A path segment, percent-encoded.
pub fn segment(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
