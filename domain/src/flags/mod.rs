//! Feature flags in flagd's definition format, and their evaluation.
//!
//! A flags namespace's layers hold `{"flags": {"<key>": <flag>}}`; the layers
//! merge and resolve like any configuration, and the resolved document is
//! evaluated here. The server (OFREP) and the SDK call the same functions, so
//! a flag evaluates identically wherever it is read.

mod context;
mod definition;
mod evaluate;
mod logic;
mod rollout;

pub use context::{CONTEXT_ATTRIBUTES, ContextError, DEFAULT_FLAGS_NAMESPACE, EvaluationContext};
pub use definition::{FlagDefinition, FlagSet, FlagState, parse_flag_set};
pub use evaluate::{EvaluationError, FlagEvaluation, Reason, evaluate};
pub use rollout::{
    MAX_STEPS, PlanError, RolloutPlan, RolloutStatus, RolloutStep, rollout_variants,
    split_targeting, validate_steps,
};
