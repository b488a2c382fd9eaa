//! The ECS HTTP API v1 and the composition root of the `ecs` server.

pub mod app;
pub mod audit;
pub mod auth;
pub mod body_limit;
pub mod cache;
pub mod drift;
pub mod exported_metrics;
pub mod extract;
pub mod failed_auth;
pub mod limits;
pub mod listener;
pub mod masking;
pub mod middleware;
pub mod min_position;
pub mod nats_credential;
pub mod openapi;
pub mod otlp_metrics;
pub mod problem;
pub mod refusals;
pub mod rollout_audit;
pub mod rollout_scheduler;
pub mod rollouts;
pub mod routes;
mod sealing;
pub mod secret;
pub mod server;
pub mod settings;
pub mod shutdown;
pub mod state;
pub mod studio;
pub mod telemetry;
pub mod transport;

pub use app::{Application, router};
pub use settings::Settings;
