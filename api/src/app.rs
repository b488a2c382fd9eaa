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
use ecs_projections::{
    AppliedFollower, Halts, HolderId, Lease, LeaseBucket, LeaseName, Projector, ProjectorSettings,
    ReadModel,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::audit::AuditLimits;
use crate::auth::{Authenticator, JwtSettings};
use crate::body_limit::BodyLimit;
use crate::failed_auth::FailedAuthentications;
use crate::limits::Limits;
use crate::listener::HttpListener;
use crate::middleware::require_bearer;
use crate::problem::ApiError;
use crate::routes::{
    change_requests, feed, gdpr, layers, namespaces, resolved, system, tenants, tokens, watch,
};
use crate::server::ServeSettings;
use crate::settings::Settings;
use crate::shutdown::Drain;
use crate::state::{AppInner, AppState};

/// The process-wide metrics recorder (installed once, shared by every app in
/// the process, as tests start several).
fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(crate::exported_metrics::BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // With OTLP configured, every metric also goes to OpenTelemetry.
            let installed = match crate::telemetry::otlp_meter() {
                Some(meter) => {
                    metrics::set_global_recorder(crate::otlp_metrics::FanOut::new(recorder, meter))
                        .map_err(drop)
                }
                None => metrics::set_global_recorder(recorder).map_err(drop),
            };
            if installed.is_err() {
                tracing::warn!("a metrics recorder was already installed");
            }
            crate::exported_metrics::describe();
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
            "/v1/namespaces/{ns}/rollouts",
            get(crate::routes::rollouts::list).post(crate::routes::rollouts::create),
        )
        .route(
            "/v1/namespaces/{ns}/rollouts/{id}",
            get(crate::routes::rollouts::get),
        )
        .route(
            "/v1/namespaces/{ns}/rollouts/{id}/pause",
            post(crate::routes::rollouts::pause),
        )
        .route(
            "/v1/namespaces/{ns}/rollouts/{id}/resume",
            post(crate::routes::rollouts::resume),
        )
        .route(
            "/v1/namespaces/{ns}/rollouts/{id}/cancel",
            post(crate::routes::rollouts::cancel),
        )
        .route(
            "/ofrep/v1/evaluate/flags",
            post(crate::routes::ofrep::evaluate_flags),
        )
        .route(
            "/ofrep/v1/evaluate/flags/{key}",
            post(crate::routes::ofrep::evaluate_flag),
        )
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
        .route("/v1/search", get(crate::routes::search::search))
        .route(
            "/v1/tenants/{tenant}/history",
            get(crate::routes::timeline::tenant_history),
        )
        .route("/v1/audit", get(crate::routes::audit::list_audit))
        .route("/v1/audit/export", get(crate::routes::audit::export_audit))
        .route("/v1/tenants/{tenant}/export", get(gdpr::export))
        .route("/v1/tenants/{tenant}/erase", post(gdpr::erase))
        .route("/v1/openapi.json", get(crate::openapi::openapi_json))
        .route("/v1/whoami", get(crate::routes::whoami::whoami))
        .route("/v1/drift", get(crate::routes::drift::list))
        .route("/v1/drift/reports", post(crate::routes::drift::report))
        .route("/v1/usage", get(crate::routes::usage::usage))
        .route("/v1/admin/projections", get(system::projections_status))
        .route(
            "/v1/admin/projections/rebuild",
            post(system::rebuild_projections),
        )
        .route(
            "/v1/admin/projections/{name}/skip",
            post(system::skip_message),
        )
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::min_position::wait_for_min_position,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::middleware::audit_refusals,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::middleware::limit_principal,
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
        // Authenticated by the ticket in its URL (browsers' EventSource
        // sends no headers).
        .route(
            crate::routes::ofrep_events::EVENTS_PATH,
            get(crate::routes::ofrep_events::events),
        )
        .route("/readyz", get(system::readyz))
        .merge(metrics)
        .merge(v1)
        .route(
            "/v1/auth/config",
            get(crate::routes::auth_config::auth_config),
        )
        .merge(crate::studio::router(
            &state.settings.studio_dir,
            state
                .settings
                .oidc_client_id
                .as_ref()
                .and(state.settings.jwt_issuer.as_deref()),
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::Extension(BodyLimit(max_body_bytes)))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::middleware::request_timeout,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::middleware::limit_source,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::middleware::gate,
        ))
        .layer(middleware::from_fn(track_requests))
        .layer(TraceLayer::new_for_http().make_span_with(crate::telemetry::request_span))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// A built server, bound to its port, ready to run.
pub struct Application {
    listener: HttpListener,
    router: Router,
    state: AppState,
    projector: Projector,
    feed: FeedPublisher,
    audit: AuditProjector,
    follower: AppliedFollower,
    /// The leases of the projector, the feed publisher, the audit
    /// projector and the rollout scheduler, in that order.
    leases: [Lease; 4],
    js: async_nats::jetstream::Context,
    shutdown: CancellationToken,
    address: SocketAddr,
    serve: ServeSettings,
    audit_limits: AuditLimits,
    failed_auth_window: Duration,
}

/// The `application_name` of the projectors' PostgreSQL connections.
pub const PROJECTOR_POOL: &str = "ecs-projector";
/// The `application_name` of the connection on which an instance learns the
/// positions the active projector commits.
pub const FOLLOWER_POOL: &str = "ecs-follower";
/// The `application_name` of the request handlers' PostgreSQL connections.
pub const READER_POOL: &str = "ecs-reader";

/// How long the background tasks get to stop once the HTTP server has
/// drained, before the process exits regardless.
const TASKS_STOP: Duration = Duration::from_secs(10);

impl Application {
    /// Connects to NATS and PostgreSQL, migrates, creates the events stream
    /// when absent and binds the listener (port 0 picks a free port).
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        settings.validate()?;
        let admin_token = settings
            .admin_token
            .clone()
            .filter(|t| !t.is_empty())
            .context("ECS_ADMIN_TOKEN is required: the bootstrap admin bearer token")?;
        let precedence: Precedence = settings.precedence.parse().context("ECS_PRECEDENCE")?;
        let shutdown = CancellationToken::new();

        let nats = crate::transport::nats_transport(&settings)?
            .connect_options("ecs-server", Duration::from_secs(5))
            .await
            .map_err(anyhow::Error::msg)?
            .request_timeout(Some(Duration::from_secs(10)))
            .connect(
                ecs_client::transport::server_addrs(settings.nats_url.expose())
                    .map_err(anyhow::Error::msg)
                    .context("ECS_NATS_URL")?,
            )
            .await
            .with_context(|| format!("cannot connect to NATS at {}", settings.nats_url))?;
        // Every accepted body must fit in one message of the events stream.
        let max_payload = nats.server_info().max_payload;
        let body_limit = BodyLimit::new(settings.max_body_bytes, max_payload);
        if body_limit.0 < settings.max_body_bytes {
            tracing::info!(
                configured = settings.max_body_bytes,
                max_payload,
                limit = body_limit.0,
                "the body limit is bounded by the NATS server's max_payload"
            );
        }
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
        let audit_limits = AuditLimits::of(&settings);
        crate::audit::ensure_audit_stream(&js, settings.stream_replicas, audit_limits).await?;
        ecs_projections::feed::ensure_bucket(&js, settings.stream_replicas).await?;
        if let Some(api_prefix) = &settings.feed_mirror_api {
            ecs_projections::feed_mirror::ensure_mirror(
                &nats,
                api_prefix,
                settings.stream_replicas,
            )
            .await?;
        }
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
        keyring.verify_master_key().await?;

        // Two pools: readers (request handlers) cannot take the connections
        // the projectors need, so a read storm delays reads, not projections
        // (and so not the writes that wait for them).
        let options: PgConnectOptions =
            settings.database_url.expose().parse().with_context(|| {
                format!("ECS_DATABASE_URL {} is not a URL", settings.database_url)
            })?;
        // Each pool names itself, so `pg_stat_activity` shows who holds what.
        let connect = |name: &str, connections: u32| {
            PgPoolOptions::new()
                .max_connections(connections)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options.clone().application_name(name))
        };
        let projector_pool = connect(PROJECTOR_POOL, settings.projector_db_connections)
            .await
            .with_context(|| {
                format!("cannot connect to PostgreSQL at {}", settings.database_url)
            })?;
        ecs_projections::migrate(&projector_pool)
            .await
            .context("database migrations")?;
        let reader_pool = connect(READER_POOL, settings.reader_db_connections)
            .await
            .with_context(|| {
                format!("cannot connect to PostgreSQL at {}", settings.database_url)
            })?;

        let follower_pool = connect(FOLLOWER_POOL, 1).await.with_context(|| {
            format!("cannot connect to PostgreSQL at {}", settings.database_url)
        })?;
        let lease_bucket = LeaseBucket::ensure(
            &js,
            settings.stream_replicas,
            Duration::from_secs(settings.lease_ttl_secs),
        )
        .await?;

        let read = ReadModel::new(reader_pool);
        let halts = Halts::default();
        let (feed, feed_published) = FeedPublisher::new(
            js.clone(),
            projector_pool.clone(),
            settings.stream_name.clone(),
        );
        let feed = feed.with_keyring(keyring.clone()).with_halts(halts.clone());
        let (audit, _) = AuditProjector::new(
            projector_pool.clone(),
            js.clone(),
            crate::audit::AUDIT_STREAM,
        );
        let audit = audit
            .with_halts(halts.clone())
            .with_keyring(keyring.clone());
        let (projector, projections) = Projector::new(
            projector_pool,
            js.clone(),
            ProjectorSettings {
                stream: settings.stream_name.clone(),
                ..Default::default()
            },
        );
        let projector = projector
            .with_keyring(keyring.clone())
            .with_halts(halts.clone());
        let follower = projector.follower(follower_pool);
        let listener = TcpListener::bind(&settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let address = listener.local_addr()?;
        let instance = HolderId::for_address(address.port());
        let leases = [
            LeaseName::Projections,
            LeaseName::Feed,
            LeaseName::Audit,
            LeaseName::Rollouts,
        ]
        .map(|name| lease_bucket.lease(name, instance.clone()));
        let state = AppState::new(AppInner {
            cache: Arc::new(crate::cache::SnapshotCache::new(
                read.clone(),
                projections.clone(),
            )),
            rollouts: crate::rollouts::ensure_bucket(&js, settings.stream_replicas).await?,
            bus: CommandBus::new(js.clone(), settings.stream_name.clone())
                .with_keyring(keyring.clone())
                .with_max_message(max_payload),
            js: js.clone(),
            halts,
            instance,
            leases: leases.iter().map(|l| (l.name(), l.status())).collect(),
            feed_published,
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
            drain: Drain::new(shutdown.clone()),
            limits: Arc::new(Limits::new(&settings)),
            failed_auth: FailedAuthentications::default(),
        });
        let listener = HttpListener::new(listener, crate::transport::http_tls(&settings)?)?;
        Ok(Application {
            listener,
            router: router(state.clone(), body_limit.0),
            state,
            projector,
            feed,
            audit,
            follower,
            leases,
            js,
            shutdown,
            address,
            serve: ServeSettings {
                max_connections: settings.max_connections,
                header_timeout: Duration::from_secs(settings.header_timeout_secs),
                grace: Duration::from_secs(settings.shutdown_grace),
            },
            audit_limits,
            failed_auth_window: Duration::from_secs(settings.auth_failure_window_secs.max(1)),
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// `http://<address>`, or `https://<address>` with TLS.
    pub fn url(&self) -> String {
        let scheme = if self.listener.is_tls() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.address)
    }

    /// Cancelling this token stops the server gracefully: the HTTP server
    /// drains (see [`crate::shutdown`]), then the background tasks stop.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves HTTP and runs the projector, the feed publisher and the audit
    /// tasks until shutdown or until one of them fails; either way the HTTP
    /// server drains first and the background tasks stop after it.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let shutdown = self.shutdown.clone();
        // The background tasks stop only after the HTTP server has drained:
        // a write still running waits for the projector to apply it.
        let tasks = CancellationToken::new();
        let mut background = tokio::task::JoinSet::new();
        // Every instance follows the positions the active projector commits;
        // the projector, the feed publisher and the audit projector each run
        // on the one instance holding their lease (docs/adr/0019).
        background.spawn(named(
            "the applied-position follower",
            self.follower.run(tasks.clone()),
        ));
        let [projector_lease, feed_lease, audit_lease, rollouts_lease] = self.leases;
        background.spawn(named(
            "the projector",
            elected(projector_lease, self.projector, tasks.clone()),
        ));
        background.spawn(named(
            "the feed publisher",
            elected(feed_lease, self.feed, tasks.clone()),
        ));
        background.spawn(named(
            "the audit projector",
            elected(audit_lease, self.audit, tasks.clone()),
        ));
        background.spawn(named(
            "the rollout scheduler",
            elected(
                rollouts_lease,
                crate::rollout_scheduler::RolloutScheduler::new(self.state.clone()),
                tasks.clone(),
            ),
        ));
        let flusher = self.state.clone();
        let window = self.failed_auth_window;
        let flush = tasks.clone();
        background.spawn(async move {
            crate::refusals::run(flusher, window, flush).await;
            ("the failed-authentication recorder", Ok(()))
        });
        let (js, limits, usage) = (self.js.clone(), self.audit_limits, tasks.clone());
        background.spawn(async move {
            crate::audit::watch_audit_usage(js, limits, usage).await;
            ("the audit usage gauge", Ok(()))
        });

        // Drift reports from SDK clients on NATS, and the drift gauges
        // (every instance: a queue group records each report once).
        let (nats, read, stop) = (
            self.state.nats.clone(),
            self.state.read.clone(),
            tasks.clone(),
        );
        background.spawn(async move {
            crate::drift::listen(nats, read, stop).await;
            ("the drift report listener", Ok(()))
        });
        let (read, stop) = (self.state.read.clone(), tasks.clone());
        background.spawn(async move {
            crate::drift::refresh_gauges(read, stop).await;
            ("the drift gauges", Ok(()))
        });

        tracing::info!(address = %self.address, "ECS listening");
        let server = crate::server::serve(
            self.listener,
            self.router,
            self.serve,
            self.state.drain.clone(),
        );
        tokio::pin!(server);
        let mut failure = None;
        let served = tokio::select! {
            r = &mut server => r,
            Some(ended) = background.join_next() => {
                let (name, result) = ended.unwrap_or_else(|e| ("a background task", Err(e.into())));
                let error = result.err().unwrap_or_else(|| anyhow::anyhow!("it ended"));
                tracing::error!(error = format!("{error:#}"), "{name} stopped; shutting down");
                failure = Some(error.context(format!("{name} stopped")));
                shutdown.cancel();
                server.await
            }
        };
        shutdown.cancel();
        tasks.cancel();
        let stopping = async {
            while let Some(ended) = background.join_next().await {
                if let Ok((name, Err(error))) = ended {
                    tracing::warn!(error = format!("{error:#}"), "{name} stopped with an error");
                }
            }
        };
        if tokio::time::timeout(TASKS_STOP, stopping).await.is_err() {
            tracing::warn!("background tasks did not stop in time; they are abandoned");
        }
        tracing::info!("stopped");
        match failure {
            Some(error) => Err(error),
            None => served.context("the HTTP server stopped"),
        }
    }
}

/// A background task's outcome with its name, for the log.
async fn named(
    name: &'static str,
    task: impl std::future::Future<Output = anyhow::Result<()>>,
) -> (&'static str, anyhow::Result<()>) {
    (name, task.await)
}

/// Runs `job` whenever this instance holds `lease`, until `shutdown`.
async fn elected<J: ecs_projections::lease::Singleton>(
    lease: Lease,
    mut job: J,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    lease.run(&mut job, &shutdown).await
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
