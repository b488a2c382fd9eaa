//! Integration-test support: real servers and the ECS app under test.

pub mod app;
pub mod servers;
