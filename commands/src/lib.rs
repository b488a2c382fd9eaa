//! The write side of ECS: cqrs-es aggregates persisted in NATS JetStream.
//!
//! One accepted command is one message in the events stream holding all the
//! events it produced, appended with optimistic concurrency
//! (`Nats-Expected-Last-Subject-Sequence`) and de-duplicated by the command id
//! (`Nats-Msg-Id`). Subjects carry the tenant:
//! `ecs.events.<tenant or _>.<aggregate type>.<aggregate id>`.

pub mod approval;
pub mod bus;
pub mod keyring;
pub mod message;
pub mod sealing;
pub mod store;
pub mod stream;
pub mod trace;

pub use bus::{CommandBus, CommandError, CommandMeta, Committed};
pub use message::{AnyEvents, EventMessage};
pub use store::{Addressed, JetStreamStore, MessageTooLarge};
pub use stream::{EVENTS_SUBJECTS, StreamSettings, UnsafeStream, ensure_stream, unsafe_settings};
