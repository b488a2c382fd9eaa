//! The composition root: builds every part once and runs them together.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ecs_commands::keyring::Keyring;
use ecs_commands::{CommandBus, StreamSettings, ensure_stream};
use ecs_domain::{Precedence, Services};
use ecs_projections::audit::AuditProjector;
use ecs_projections::feed::FeedPublisher;
use ecs_projections::{Projector, ProjectorSettings, ReadModel};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sqlx::postgres::PgPoolOptions;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::auth::{Authenticator, JwtSettings, require_bearer};
use crate::problem::ApiError;
use crate::routes::{
    change_requests, feed, gdpr, layers, namespaces, resolved, system, tenants, tokens, watch,
};
use crate::settings::Settings;
use crate::state::{AppInner, AppState};

/// The process-wide metrics recorder (installed once, shared by every app in
/// the process, as tests start several).
fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ])
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed");
            }
            handle
        })
        .clone()
}

async fn track_requests(request: Request, next: Next) -> Response {
    let start = std::time::Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("ecs_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("ecs_http_request_duration_seconds", "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    response
}

async fn not_found() -> Response {
    ApiError::not_found("no-such-route", "no such resource").into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::MethodNotAllowed.into_response()
}

/// The HTTP API: `/v1` behind bearer auth; health, readiness and metrics open.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let v1 = Router::new()
        .route("/v1/namespaces", get(namespaces::list_namespaces))
        .route(
            "/v1/namespaces/{ns}",
            get(namespaces::get_namespace).put(namespaces::put_namespace),
        )
        .route(
            "/v1/namespaces/{ns}/layer",
            get(layers::get_layer)
                .put(layers::put_layer)
                .patch(layers::patch_layer)
                .delete(layers::delete_layer),
        )
        .route(
            "/v1/namespaces/{ns}/layer/history",
            get(layers::layer_history),
        )
        .route(
            "/v1/namespaces/{ns}/layer/rollback",
            post(layers::rollback_layer),
        )
        .route("/v1/namespaces/{ns}/resolved", get(resolved::get_resolved))
        .route(
            "/v1/namespaces/{ns}/locks",
            get(crate::routes::locks::binding),
        )
        .route("/v1/namespaces/{ns}/watch", get(watch::watch_resolved))
        .route("/v1/feed", get(feed::feed))
        .route("/v1/tenants", get(tenants::list_tenants))
        .route(
            "/v1/tenants/{tenant}",
            get(tenants::get_tenant).put(tenants::put_tenant),
        )
        .route(
            "/v1/tokens",
            get(tokens::list_tokens).post(tokens::issue_token),
        )
        .route(
            "/v1/tokens/{id}",
            axum::routing::delete(tokens::revoke_token),
        )
        .route("/v1/change-requests", get(change_requests::list))
        .route("/v1/change-requests/{id}", get(change_requests::show))
        .route(
            "/v1/change-requests/{id}/approve",
            post(change_requests::approve),
        )
        .route(
            "/v1/change-requests/{id}/reject",
            post(change_requests::reject),
        )
        .route(
            "/v1/change-requests/{id}/withdraw",
            post(change_requests::withdraw),
        )
        .route("/v1/audit", get(crate::routes::audit::list_audit))
        .route("/v1/audit/export", get(crate::routes::audit::export_audit))
        .route("/v1/tenants/{tenant}/export", get(gdpr::export))
        .route("/v1/tenants/{tenant}/erase", post(gdpr::erase))
        .route("/v1/openapi.json", get(system::openapi))
        .route("/v1/whoami", get(crate::routes::whoami::whoami))
        .route("/v1/admin/projections", get(system::projections_status))
        .route(
            "/v1/admin/projections/rebuild",
            post(system::rebuild_projections),
        )
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::audit::audit_refusals,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_bearer,
        ));
    let metrics =
        if state.settings.metrics_public {
            Router::new().route("/metrics", get(system::metrics))
        } else {
            Router::new().route("/metrics", get(system::metrics)).layer(
                middleware::from_fn_with_state(state.clone(), require_bearer),
            )
        };
    Router::new()
        .route("/healthz", get(system::healthz))
        .route("/readyz", get(system::readyz))
        .merge(metrics)
        .merge(v1)
        .merge(crate::studio::router(&state.settings.studio_dir))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn(track_requests))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let request_id = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                tracing::info_span!(
                    "request",
                    method = %request.method(),
                    uri = %request.uri().path(),
                    request_id,
                    actor = tracing::field::Empty,
                )
            }),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// A built server, bound to its port, ready to run.
pub struct Application {
    listener: TcpListener,
    router: Router,
    projector: Projector,
    feed: FeedPublisher,
    audit: AuditProjector,
    shutdown: CancellationToken,
    address: SocketAddr,
}

impl Application {
    /// Connects to NATS and PostgreSQL, migrates, creates the events stream
    /// when absent and binds the listener (port 0 picks a free port).
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let admin_token = settings
            .admin_token
            .clone()
            .filter(|t| !t.is_empty())
            .context("ECS_ADMIN_TOKEN is required: the bootstrap admin bearer token")?;
        let precedence: Precedence = settings.precedence.parse().context("ECS_PRECEDENCE")?;

        let nats = async_nats::ConnectOptions::new()
            .name("ecs-server")
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(Duration::from_secs(10)))
            .connect(&settings.nats_url)
            .await
            .with_context(|| format!("cannot connect to NATS at {}", settings.nats_url))?;
        let js = async_nats::jetstream::new(nats.clone());
        ensure_stream(
            &js,
            &StreamSettings {
                name: settings.stream_name.clone(),
                replicas: settings.stream_replicas,
                duplicate_window: Duration::from_secs(settings.dedupe_window_secs),
            },
        )
        .await?;
        crate::audit::ensure_audit_stream(&js, settings.stream_replicas).await?;
        ecs_projections::feed::ensure_bucket(&js, settings.stream_replicas).await?;
        let keyring = Arc::new(
            Keyring::connect(
                &js,
                settings.master_key.as_deref(),
                settings.stream_replicas,
            )
            .await?,
        );
        if settings.master_key.is_none() {
            tracing::warn!("ECS_MASTER_KEY is not set: tenant data keys are stored unwrapped");
        }
        let (feed, _) = FeedPublisher::new(js.clone(), settings.stream_name.clone());
        let feed = feed.with_keyring(keyring.clone());

        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect(&settings.database_url)
            .await
            .with_context(|| {
                format!(
                    "cannot connect to PostgreSQL at {}",
                    redact(&settings.database_url)
                )
            })?;
        ecs_projections::migrate(&pool)
            .await
            .context("database migrations")?;

        let read = ReadModel::new(pool.clone());
        let (audit, _) = AuditProjector::new(pool.clone(), js.clone(), crate::audit::AUDIT_STREAM);
        let (projector, projections) = Projector::new(
            pool,
            js.clone(),
            ProjectorSettings {
                stream: settings.stream_name.clone(),
                ..Default::default()
            },
        );
        let projector = projector.with_keyring(keyring.clone());
        let state = AppState::new(AppInner {
            cache: Arc::new(crate::cache::SnapshotCache::new(
                read.clone(),
                projections.clone(),
            )),
            bus: CommandBus::new(js, settings.stream_name.clone()).with_keyring(keyring.clone()),
            keyring,
            services: Services {
                reader: Arc::new(read.clone()),
                precedence,
            },
            read: read.clone(),
            projections: projections.clone(),
            nats,
            metrics: metrics_handle(),
            write_wait: Duration::from_millis(settings.write_wait_ms),
            auth: Arc::new(Authenticator::new(
                &admin_token,
                read.clone(),
                projections.clone(),
                jwt_settings(&settings)?,
            )),
            settings: Arc::new(settings.clone()),
        });
        let listener = TcpListener::bind(&settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let address = listener.local_addr()?;
        Ok(Application {
            listener,
            router: router(state, settings.max_body_bytes),
            projector,
            feed,
            audit,
            shutdown: CancellationToken::new(),
            address,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Cancelling this token stops the server gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves HTTP and runs the projector and the feed publisher until shutdown
    /// or until one of them fails.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let shutdown = self.shutdown.clone();
        let server = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .into_future();
        let projector = self.projector.run(shutdown.clone());
        let feed = self.feed.run(shutdown.clone());
        let audit = self.audit.run(shutdown.clone());
        tracing::info!(address = %self.address, "ECS listening");
        let result = tokio::select! {
            r = server => r.context("the HTTP server stopped"),
            r = projector => r.context("the projector stopped"),
            r = feed => r.context("the feed publisher stopped"),
            r = audit => r.context("the audit projector stopped"),
        };
        shutdown.cancel();
        result
    }
}

/// JWT validation from the settings; the JWKS file is read once at start.
fn jwt_settings(settings: &Settings) -> anyhow::Result<JwtSettings> {
    let jwks = match &settings.jwt_jwks_file {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("ECS_JWT_JWKS_FILE {path}"))?;
            Some(
                serde_json::from_str(&text)
                    .with_context(|| format!("ECS_JWT_JWKS_FILE {path} is not a JWKS"))?,
            )
        }
    };
    Ok(JwtSettings {
        hs256_secret: settings.jwt_hs256_secret.clone().filter(|s| !s.is_empty()),
        jwks,
        issuer: settings.jwt_issuer.clone(),
        audience: settings.jwt_audience.clone(),
    })
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
