//! Typed settings: defaults, then an optional TOML file, then `ECS_*`
//! environment variables.

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Everything `ecs serve` can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// `ECS_LISTEN`: the address the HTTP API binds.
    pub listen: String,
    /// `ECS_NATS_URL`: the NATS server (or comma-separated servers).
    pub nats_url: String,
    /// `ECS_DATABASE_URL`: the PostgreSQL database holding the projections.
    pub database_url: String,
    /// `ECS_ADMIN_TOKEN`: the bootstrap admin bearer token (required).
    pub admin_token: Option<String>,
    /// `ECS_STREAM_REPLICAS`: replicas of the events stream when it is created.
    pub stream_replicas: usize,
    /// `ECS_STREAM_NAME`: the events stream's name.
    pub stream_name: String,
    /// `ECS_PRECEDENCE`: the precedence chain, weakest first.
    pub precedence: String,
    /// `ECS_MAX_BODY_BYTES`: the largest request body accepted.
    pub max_body_bytes: usize,
    /// `ECS_WRITE_WAIT_MS`: how long a write waits for the projections to
    /// apply it before answering (read-your-writes).
    pub write_wait_ms: u64,
    /// `ECS_DEDUPE_WINDOW_SECS`: how long JetStream remembers command ids.
    pub dedupe_window_secs: u64,
    /// `ECS_JWT_HS256_SECRET`: accept HS256 JWTs signed with this secret (development).
    pub jwt_hs256_secret: Option<String>,
    /// `ECS_JWT_JWKS_FILE`: accept RS256/ES256 JWTs signed by a key of this JWKS file.
    pub jwt_jwks_file: Option<String>,
    /// `ECS_JWT_ISSUER`: the required `iss` of JWTs.
    pub jwt_issuer: Option<String>,
    /// `ECS_JWT_AUDIENCE`: the required `aud` of JWTs.
    pub jwt_audience: Option<String>,
    /// `ECS_METRICS_PUBLIC`: serve `/metrics` without a credential.
    pub metrics_public: bool,
    /// `ECS_MASTER_KEY`: 32 bytes as 64 hex characters; wraps the per-tenant
    /// data keys that encrypt tenant data in the events stream.
    pub master_key: Option<String>,
    /// `ECS_STUDIO_DIR`: the built Config Studio served at `/studio/`.
    pub studio_dir: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: "127.0.0.1:8080".to_owned(),
            nats_url: "nats://127.0.0.1:4222".to_owned(),
            database_url: "postgres://localhost/ecs".to_owned(),
            admin_token: None,
            stream_replicas: 1,
            stream_name: "ECS_EVENTS".to_owned(),
            precedence: "env,service,tenant,edition".to_owned(),
            max_body_bytes: 1024 * 1024,
            write_wait_ms: 10_000,
            dedupe_window_secs: 24 * 60 * 60,
            jwt_hs256_secret: None,
            jwt_jwks_file: None,
            jwt_issuer: None,
            jwt_audience: None,
            metrics_public: true,
            master_key: None,
            studio_dir: "studio/dist".to_owned(),
        }
    }
}

/// The help text of `ecs serve`, listing every setting.
pub const SETTINGS_HELP: &str = "\
Settings come from defaults, then the TOML file given by --config (or ECS_CONFIG),
then environment variables:

  ECS_LISTEN              address of the HTTP API             [default: 127.0.0.1:8080]
  ECS_NATS_URL            NATS server URL(s)                  [default: nats://127.0.0.1:4222]
  ECS_DATABASE_URL        PostgreSQL URL for the projections  [default: postgres://localhost/ecs]
  ECS_ADMIN_TOKEN         bootstrap admin bearer token        (required)
  ECS_STREAM_REPLICAS     replicas of the events stream       [default: 1; use 3 in production]
  ECS_STREAM_NAME         name of the events stream           [default: ECS_EVENTS]
  ECS_PRECEDENCE          precedence chain, weakest first     [default: env,service,tenant,edition]
  ECS_MAX_BODY_BYTES      largest request body (413 above)    [default: 1048576]
  ECS_WRITE_WAIT_MS       wait for projections before a write answers [default: 10000]
  ECS_DEDUPE_WINDOW_SECS  how long command ids are remembered [default: 86400]
  ECS_JWT_HS256_SECRET    accept HS256 JWTs with this secret  (development only)
  ECS_JWT_JWKS_FILE       accept RS256/ES256 JWTs from this JWKS file
  ECS_JWT_ISSUER          required `iss` of JWTs
  ECS_JWT_AUDIENCE        required `aud` of JWTs
  ECS_METRICS_PUBLIC      serve /metrics without a token      [default: true]
  ECS_MASTER_KEY          64 hex chars; wraps tenant data keys (set it in production)
  ECS_STUDIO_DIR          built Config Studio served at /studio/ [default: studio/dist]
  RUST_LOG                log filter                          [default: info]
  ECS_LOG_FORMAT          `json` for JSON logs                [default: text]

The TOML file uses the same names in lower case without the prefix (listen = \"...\").";

impl Settings {
    /// Loads settings from an optional file and the environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment
            .merge(Env::prefixed("ECS_").ignore(&["config", "log_format"]))
            .extract()
            .map_err(Box::new)
    }
}
