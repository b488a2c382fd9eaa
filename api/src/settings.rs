//! Typed settings: defaults, then an optional TOML file, then `ECS_*`
//! environment variables.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::secret::{ConnectionUrl, Redactor, Secret};

/// Everything `ecs serve` can be told. Secret settings are [`Secret`]s and
/// connection URLs [`ConnectionUrl`]s, so `Debug` of the settings shows none
/// of them; each also accepts `ECS_<NAME>_FILE` (or `<name>_file` in the TOML
/// file), the path of a file holding the value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// `ECS_LISTEN`: the address the HTTP API binds.
    pub listen: String,
    /// `ECS_NATS_URL`: the NATS server (or comma-separated servers).
    pub nats_url: ConnectionUrl,
    /// `ECS_DATABASE_URL`: the PostgreSQL database holding the projections.
    pub database_url: ConnectionUrl,
    /// `ECS_ADMIN_TOKEN`: the bootstrap admin bearer token (required).
    pub admin_token: Option<Secret>,
    /// `ECS_STREAM_REPLICAS`: replicas of every stream and bucket ECS creates.
    pub stream_replicas: usize,
    /// `ECS_STREAM_NAME`: the events stream's name.
    pub stream_name: String,
    /// `ECS_PRECEDENCE`: the precedence chain, weakest first.
    pub precedence: String,
    /// `ECS_MAX_BODY_BYTES`: the largest request body accepted, bounded at
    /// start by what one NATS message holds (`body_limit::BodyLimit`).
    pub max_body_bytes: usize,
    /// `ECS_WRITE_WAIT_MS`: how long a write waits for the projections to
    /// apply it before answering (read-your-writes).
    pub write_wait_ms: u64,
    /// `ECS_MIN_POSITION_WAIT_MS`: how long a read given `min_position` (or
    /// `ECS-Min-Position`) waits for the projections to reach it.
    pub min_position_wait_ms: u64,
    /// `ECS_LEASE_TTL_SECS`: how long a lease (one instance running the
    /// projector, the feed publisher, …) outlives its holder's last renewal;
    /// a standby takes over within it after the holder dies.
    pub lease_ttl_secs: u64,
    /// `ECS_DEDUPE_WINDOW_SECS`: how long JetStream remembers command ids.
    pub dedupe_window_secs: u64,
    /// `ECS_JWT_HS256_SECRET`: accept HS256 JWTs signed with this secret (development).
    pub jwt_hs256_secret: Option<Secret>,
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
    pub master_key: Option<Secret>,
    /// `ECS_MODE`: `development` (the quickstart's zero configuration) or
    /// `production`, which refuses to start without the settings a deployment
    /// must not run without (`ECS_MASTER_KEY`).
    pub mode: Mode,
    /// `ECS_SHUTDOWN_GRACE`: seconds a shutdown waits for in-flight
    /// requests before it closes the remaining connections.
    pub shutdown_grace: u64,
    /// `ECS_HEADER_TIMEOUT_SECS`: how long a client may take to send a
    /// request's headers (and how long an idle connection stays open).
    pub header_timeout_secs: u64,
    /// `ECS_REQUEST_TIMEOUT_SECS`: how long a request may take before it is
    /// answered 503 (server-sent event streams are exempt).
    pub request_timeout_secs: u64,
    /// `ECS_MAX_CONNECTIONS`: open HTTP connections at most; further clients
    /// wait in the listen backlog.
    pub max_connections: usize,
    /// `ECS_MAX_STREAMS_PER_PRINCIPAL`: open server-sent event streams
    /// (`/watch`, `/v1/feed`) per principal at most (429 above).
    pub max_streams_per_principal: usize,
    /// `ECS_SOURCE_RATE`: requests per second allowed from one source address
    /// (0: no limit).
    pub source_rate: u32,
    /// `ECS_SOURCE_BURST`: requests a source may send at once above its rate.
    pub source_burst: u32,
    /// `ECS_PRINCIPAL_RATE`: requests per second allowed for one principal
    /// (0: no limit).
    pub principal_rate: u32,
    /// `ECS_PRINCIPAL_BURST`: requests a principal may send at once above its rate.
    pub principal_burst: u32,
    /// `ECS_READER_DB_CONNECTIONS`: PostgreSQL connections for request handlers.
    pub reader_db_connections: u32,
    /// `ECS_PROJECTOR_DB_CONNECTIONS`: PostgreSQL connections for the
    /// projectors, apart from the readers' so that readers cannot starve them.
    pub projector_db_connections: u32,
    /// `ECS_AUTH_FAILURE_WINDOW_SECS`: failed authentications from one source
    /// for one reason are recorded as one audit record per window, with a count.
    pub auth_failure_window_secs: u64,
    /// `ECS_AUDIT_MAX_BYTES`: the audit stream's size limit (the oldest
    /// records are dropped above it; they stay in the `audit` table).
    pub audit_max_bytes: i64,
    /// `ECS_AUDIT_MAX_AGE_DAYS`: the audit stream's age limit (0: none).
    pub audit_max_age_days: u64,
    /// `ECS_AUDIT_WARN_RATIO`: the audit stream's usage ratio above which the
    /// server logs a warning (the gauge `ecs_audit_stream_usage_ratio`).
    pub audit_warn_ratio: f64,
    // Transport security: NATS credential and TLS, HTTPS on the API
    // (`docs/operations.md`, "NATS authentication and permissions" and "TLS").
    /// `ECS_NATS_CREDS`: a NATS `.creds` file (user JWT and seed).
    pub nats_creds: Option<String>,
    /// `ECS_NATS_NKEY`: the server's nkey seed (`SU...`).
    pub nats_nkey: Option<Secret>,
    /// `ECS_NATS_USER`: a NATS user name (with `ECS_NATS_PASSWORD`).
    pub nats_user: Option<String>,
    /// `ECS_NATS_PASSWORD`: the NATS user's password.
    pub nats_password: Option<Secret>,
    /// `ECS_NATS_TOKEN`: a NATS token.
    pub nats_token: Option<Secret>,
    /// `ECS_NATS_CA`: PEM file of the CAs that sign the NATS server's
    /// certificate; requires TLS.
    pub nats_ca: Option<String>,
    /// `ECS_NATS_CERT`: a client certificate (PEM) presented to NATS.
    pub nats_cert: Option<String>,
    /// `ECS_NATS_KEY`: the key (PEM) of `ECS_NATS_CERT`.
    pub nats_key: Option<String>,
    /// `ECS_FEED_MIRROR_API`: the JetStream API prefix under which the
    /// server's NATS account reaches the feed readers' account (`$JS.feed.API`
    /// with `deploy/nats-auth.conf`, ADR 18); the server then keeps a mirror
    /// of the feed there. Unset: readers read the feed bucket itself.
    pub feed_mirror_api: Option<String>,
    /// `ECS_TLS_CERT`: the HTTP API's certificate chain (PEM); with
    /// `ECS_TLS_KEY`, the API serves HTTPS only.
    pub tls_cert: Option<String>,
    /// `ECS_TLS_KEY`: the key (PEM) of `ECS_TLS_CERT`.
    pub tls_key: Option<String>,
    /// `ECS_STUDIO_DIR`: the built Config Studio served at `/studio/`.
    pub studio_dir: String,
    /// `ECS_OIDC_CLIENT_ID`: Config Studio's client id at the OIDC issuer
    /// (`ECS_JWT_ISSUER`); with it, Studio offers "Sign in with" the issuer.
    pub oidc_client_id: Option<String>,
    /// `ECS_OIDC_SCOPES`: the scopes Studio asks the issuer for.
    pub oidc_scopes: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: "127.0.0.1:8080".to_owned(),
            nats_url: "nats://127.0.0.1:4222".into(),
            database_url: "postgres://localhost/ecs".into(),
            admin_token: None,
            stream_replicas: 1,
            stream_name: "ECS_EVENTS".to_owned(),
            precedence: "env,service,tenant,edition".to_owned(),
            max_body_bytes: 1024 * 1024,
            write_wait_ms: 10_000,
            min_position_wait_ms: 5_000,
            lease_ttl_secs: 10,
            dedupe_window_secs: 24 * 60 * 60,
            jwt_hs256_secret: None,
            jwt_jwks_file: None,
            jwt_issuer: None,
            jwt_audience: None,
            metrics_public: true,
            master_key: None,
            mode: Mode::Development,
            shutdown_grace: 20,
            header_timeout_secs: 20,
            request_timeout_secs: 30,
            max_connections: 4096,
            max_streams_per_principal: 64,
            source_rate: 1000,
            source_burst: 2000,
            principal_rate: 500,
            principal_burst: 1000,
            reader_db_connections: 16,
            projector_db_connections: 4,
            auth_failure_window_secs: 60,
            audit_max_bytes: 256 * 1024 * 1024,
            audit_max_age_days: 400,
            audit_warn_ratio: 0.8,
            nats_creds: None,
            nats_nkey: None,
            nats_user: None,
            nats_password: None,
            nats_token: None,
            nats_ca: None,
            nats_cert: None,
            nats_key: None,
            feed_mirror_api: None,
            tls_cert: None,
            tls_key: None,
            studio_dir: "studio/dist".to_owned(),
            oidc_client_id: None,
            oidc_scopes: "openid".to_owned(),
        }
    }
}

/// The help text of `ecs serve`, listing every setting.
pub const SETTINGS_HELP: &str = "\
Settings come from defaults, then the TOML file given by --config (or ECS_CONFIG),
then environment variables:

  ECS_LISTEN              address of the HTTP API             [default: 127.0.0.1:8080]
  ECS_NATS_URL            NATS server URL(s), comma-separated [default: nats://127.0.0.1:4222]
  ECS_DATABASE_URL        PostgreSQL URL for the projections  [default: postgres://localhost/ecs]
  ECS_ADMIN_TOKEN         bootstrap admin bearer token        (required)
  ECS_STREAM_REPLICAS     replicas of every stream and bucket [default: 1; use 3 in production]
  ECS_STREAM_NAME         name of the events stream           [default: ECS_EVENTS]
  ECS_PRECEDENCE          precedence chain, weakest first     [default: env,service,tenant,edition]
  ECS_MAX_BODY_BYTES      largest request body (413 above)    [default: 1048576; bounded by NATS max_payload]
  ECS_WRITE_WAIT_MS       wait for projections before a write answers [default: 10000;
                          a revocation or erasure not applied by then answers 503]
  ECS_MIN_POSITION_WAIT_MS  wait for projections before a read given min_position
                          answers [default: 5000; 503 with Retry-After after it]
  ECS_LEASE_TTL_SECS      lease TTL: a standby takes over the projector, the feed
                          publisher, … within it when their instance dies [default: 10]
  ECS_DEDUPE_WINDOW_SECS  how long command ids are remembered [default: 86400]
  ECS_JWT_HS256_SECRET    accept HS256 JWTs with this secret  (development only)
  ECS_JWT_JWKS_FILE       accept RS256/ES256 JWTs from this JWKS file
  ECS_JWT_ISSUER          required `iss` of JWTs
  ECS_JWT_AUDIENCE        required `aud` of JWTs
  ECS_METRICS_PUBLIC      serve /metrics without a token      [default: true]
  ECS_MASTER_KEY          64 hex chars; wraps tenant data keys (set it in production)
  ECS_MODE                development | production (refuses to start without ECS_MASTER_KEY) [default: development]
  ECS_SHUTDOWN_GRACE      seconds for in-flight requests at shutdown [default: 20]
  ECS_HEADER_TIMEOUT_SECS time to send request headers; idle connections [default: 20]
  ECS_REQUEST_TIMEOUT_SECS time to answer a request (SSE exempt) [default: 30]
  ECS_MAX_CONNECTIONS     open HTTP connections at most       [default: 4096]
  ECS_MAX_STREAMS_PER_PRINCIPAL  SSE streams per principal    [default: 64]
  ECS_SOURCE_RATE         requests/s per source address, 0 off [default: 1000]
  ECS_SOURCE_BURST        burst above the source rate         [default: 2000]
  ECS_PRINCIPAL_RATE      requests/s per principal, 0 off     [default: 500]
  ECS_PRINCIPAL_BURST     burst above the principal rate      [default: 1000]
  ECS_READER_DB_CONNECTIONS     PostgreSQL pool of readers    [default: 16]
  ECS_PROJECTOR_DB_CONNECTIONS  PostgreSQL pool of projectors [default: 4]
  ECS_AUTH_FAILURE_WINDOW_SECS  one audit record per source and reason per window [default: 60]
  ECS_AUDIT_MAX_BYTES     size limit of the ECS_AUDIT stream  [default: 268435456]
  ECS_AUDIT_MAX_AGE_DAYS  age limit of the ECS_AUDIT stream   [default: 400; 0: none]
  ECS_AUDIT_WARN_RATIO    warn above this usage of the limit  [default: 0.8]
  ECS_NATS_CREDS          NATS .creds file (user JWT and nkey seed)
  ECS_NATS_NKEY           NATS nkey seed (SU...), e.g. for deploy/nats-auth.conf
  ECS_NATS_USER           NATS user name (with ECS_NATS_PASSWORD)
  ECS_NATS_PASSWORD       NATS password
  ECS_NATS_TOKEN          NATS token
  ECS_NATS_CA             PEM CA file verifying the NATS server (requires TLS)
  ECS_NATS_CERT           client certificate (PEM) presented to NATS
  ECS_NATS_KEY            key (PEM) of ECS_NATS_CERT
  ECS_TLS_CERT            certificate chain (PEM): the API serves HTTPS only
  ECS_TLS_KEY             key (PEM) of ECS_TLS_CERT
  ECS_STUDIO_DIR          built Config Studio served at /studio/ [default: studio/dist]
  ECS_OIDC_CLIENT_ID      Studio's client id at the ECS_JWT_ISSUER (authorization code + PKCE)
  ECS_OIDC_SCOPES         scopes Studio asks the issuer for   [default: openid]
  RUST_LOG                log filter                          [default: info]
  ECS_LOG_FORMAT          `json` for JSON logs                [default: text]

Every secret (ECS_ADMIN_TOKEN, ECS_MASTER_KEY, ECS_JWT_HS256_SECRET, ECS_DATABASE_URL,
ECS_NATS_URL, ECS_NATS_NKEY, ECS_NATS_PASSWORD, ECS_NATS_TOKEN) can instead be read from a file: ECS_ADMIN_TOKEN_FILE=/run/secrets/token.
The TOML file uses the same names in lower case without the prefix (listen = \"...\").";

/// Why the settings cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Invalid(#[from] Box<figment::Error>),
    #[error("{setting}_FILE {path}: {source}")]
    SecretFile {
        setting: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("set {setting} or {setting}_FILE, not both")]
    Ambiguous { setting: &'static str },
    #[error("{setting} is required with ECS_MODE=production: {why}")]
    RequiredInProduction {
        setting: &'static str,
        why: &'static str,
    },
    #[error("{setting}: {problem}")]
    OutOfRange {
        setting: &'static str,
        problem: &'static str,
    },
}

/// How strict the server is about its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Zero configuration works (the quickstart); missing protections are
    /// warned about.
    #[default]
    Development,
    /// Missing protections refuse the start.
    Production,
}

/// The `*_FILE` form of every secret setting.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SecretFiles {
    admin_token_file: Option<PathBuf>,
    master_key_file: Option<PathBuf>,
    jwt_hs256_secret_file: Option<PathBuf>,
    database_url_file: Option<PathBuf>,
    nats_url_file: Option<PathBuf>,
    nats_nkey_file: Option<PathBuf>,
    nats_password_file: Option<PathBuf>,
    nats_token_file: Option<PathBuf>,
}

/// The content of a secret's `_FILE`, without the line end most editors
/// add; `None` without one. Giving both the secret and its file is refused.
fn secret_file(
    setting: &'static str,
    given: bool,
    path: Option<PathBuf>,
) -> Result<Option<String>, SettingsError> {
    let Some(path) = path else {
        return Ok(None);
    };
    if given {
        return Err(SettingsError::Ambiguous { setting });
    }
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text.trim_end_matches(['\n', '\r']).to_owned())),
        Err(source) => Err(SettingsError::SecretFile {
            setting,
            path,
            source,
        }),
    }
}

impl Settings {
    /// Loads settings from an optional file and the environment.
    /// A secret setting given as `ECS_<NAME>_FILE` is read from that file.
    pub fn load(file: Option<&Path>) -> Result<Settings, SettingsError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        let figment = figment.merge(Env::prefixed("ECS_").ignore(&["config", "log_format"]));
        let mut settings: Settings = figment.extract().map_err(Box::new)?;
        let files: SecretFiles = figment.extract().map_err(Box::new)?;
        let defaults = Settings::default();
        let given = settings.admin_token.is_some();
        if let Some(value) = secret_file("ECS_ADMIN_TOKEN", given, files.admin_token_file)? {
            settings.admin_token = Some(value.into());
        }
        let given = settings.master_key.is_some();
        if let Some(value) = secret_file("ECS_MASTER_KEY", given, files.master_key_file)? {
            settings.master_key = Some(value.into());
        }
        let given = settings.jwt_hs256_secret.is_some();
        let file = files.jwt_hs256_secret_file;
        if let Some(value) = secret_file("ECS_JWT_HS256_SECRET", given, file)? {
            settings.jwt_hs256_secret = Some(value.into());
        }
        // The URLs have defaults, so "given" means "differs from the default".
        let given = settings.database_url != defaults.database_url;
        if let Some(value) = secret_file("ECS_DATABASE_URL", given, files.database_url_file)? {
            settings.database_url = value.into();
        }
        let given = settings.nats_url != defaults.nats_url;
        if let Some(value) = secret_file("ECS_NATS_URL", given, files.nats_url_file)? {
            settings.nats_url = value.into();
        }
        let given = settings.nats_nkey.is_some();
        if let Some(value) = secret_file("ECS_NATS_NKEY", given, files.nats_nkey_file)? {
            settings.nats_nkey = Some(value.into());
        }
        let given = settings.nats_password.is_some();
        if let Some(value) = secret_file("ECS_NATS_PASSWORD", given, files.nats_password_file)? {
            settings.nats_password = Some(value.into());
        }
        let given = settings.nats_token.is_some();
        if let Some(value) = secret_file("ECS_NATS_TOKEN", given, files.nats_token_file)? {
            settings.nats_token = Some(value.into());
        }
        settings.validate()?;
        Ok(settings)
    }

    /// Refuses limits that would stop the server from serving at all, and in
    /// production a start without the tenant data keys' master key.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.mode == Mode::Production && self.master_key.is_none() {
            return Err(SettingsError::RequiredInProduction {
                setting: "ECS_MASTER_KEY",
                why: "without it the tenant data keys are stored unwrapped in NATS",
            });
        }
        let checks: [(bool, &'static str, &'static str); 8] = [
            (
                self.max_connections == 0,
                "ECS_MAX_CONNECTIONS",
                "must be at least 1",
            ),
            (
                self.max_streams_per_principal == 0,
                "ECS_MAX_STREAMS_PER_PRINCIPAL",
                "must be at least 1",
            ),
            (
                self.header_timeout_secs == 0,
                "ECS_HEADER_TIMEOUT_SECS",
                "must be at least 1",
            ),
            (
                self.request_timeout_secs == 0,
                "ECS_REQUEST_TIMEOUT_SECS",
                "must be at least 1",
            ),
            (
                self.lease_ttl_secs < 2,
                "ECS_LEASE_TTL_SECS",
                "must be at least 2",
            ),
            (
                self.reader_db_connections == 0,
                "ECS_READER_DB_CONNECTIONS",
                "must be at least 1",
            ),
            (
                self.projector_db_connections < 2,
                "ECS_PROJECTOR_DB_CONNECTIONS",
                "must be at least 2 (the projector and the audit projector)",
            ),
            (
                !(self.audit_warn_ratio > 0.0 && self.audit_warn_ratio <= 1.0),
                "ECS_AUDIT_WARN_RATIO",
                "must be above 0 and at most 1",
            ),
        ];
        if self.oidc_client_id.is_some() {
            let issuer_ok = self
                .jwt_issuer
                .as_deref()
                .and_then(crate::studio::origin_of)
                .is_some();
            if !issuer_ok || self.jwt_jwks_file.is_none() {
                return Err(SettingsError::OutOfRange {
                    setting: "ECS_OIDC_CLIENT_ID",
                    problem: "needs ECS_JWT_ISSUER (an http or https URL) and ECS_JWT_JWKS_FILE, \
                              which verify the tokens the issuer signs",
                });
            }
        }
        match checks.into_iter().find(|(bad, _, _)| *bad) {
            Some((_, setting, problem)) => Err(SettingsError::OutOfRange { setting, problem }),
            None if self.audit_max_bytes < 1024 * 1024 => Err(SettingsError::OutOfRange {
                setting: "ECS_AUDIT_MAX_BYTES",
                problem: "must be at least 1 MiB",
            }),
            None => Ok(()),
        }
    }

    /// A redactor of every secret these settings hold, for messages printed
    /// before the secrets could be kept out by type (start-up errors).
    pub fn redactor(&self) -> Redactor {
        let tokens = [
            &self.admin_token,
            &self.master_key,
            &self.jwt_hs256_secret,
            &self.nats_nkey,
            &self.nats_password,
            &self.nats_token,
        ]
        .into_iter()
        .flatten()
        .map(|s| s.expose().to_owned());
        Redactor::new(
            tokens
                .chain(self.database_url.secrets())
                .chain(self.nats_url.secrets()),
        )
    }
}
