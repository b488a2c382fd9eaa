//! The ECS HTTP API v1 and the composition root of the `ecs` server.

pub mod app;
pub mod audit;
pub mod auth;
pub mod cache;
pub mod extract;
pub mod openapi;
pub mod problem;
pub mod routes;
pub mod settings;
pub mod state;
pub mod studio;

pub use app::{Application, router};
pub use settings::Settings;
