//! The JsonLogic engine with flagd's custom operators.
//!
//! `datalogic-rs` implements `fractional` and `sem_ver` (feature `flagd`,
//! bucketing with MurmurHash3 x86_32 exactly as flagd does) and
//! `starts_with`/`ends_with` (feature `ext-string`), so no operator is
//! written here.

use std::cell::RefCell;
use std::fmt;
use std::sync::{Arc, OnceLock};

use datalogic_rs::{Engine, Logic, Session};
use serde_json::Value;

/// The engine shared by every evaluation; it holds no per-call state.
pub(crate) fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(Engine::new)
}

/// A targeting rule compiled once, when its flags document is parsed, so an
/// evaluation only runs it.
#[derive(Clone)]
pub struct CompiledRule(Arc<Logic>);

impl fmt::Debug for CompiledRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CompiledRule")
    }
}

/// A compiled rule is a function of its source rule, which the flag compares
/// already: two compiled rules never make flags differ.
impl PartialEq for CompiledRule {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// Checks that a targeting rule uses only known operators and compiles,
/// returning the compiled rule, or the offending operator or the engine's
/// message when it does not.
pub(crate) fn compile(rule: &Value) -> Result<CompiledRule, String> {
    check_operators(rule)?;
    engine()
        .compile_arc(rule)
        .map(CompiledRule)
        .map_err(|e| e.to_string())
}

/// Refuses an operator the engine does not know: the engine would otherwise
/// accept the rule and fail only when a request evaluates it.
fn check_operators(rule: &Value) -> Result<(), String> {
    match rule {
        Value::Array(items) => items.iter().try_for_each(check_operators),
        Value::Object(map) if map.len() == 1 => {
            for (op, args) in map {
                if !engine().builtin_operator_names().any(|known| known == op) {
                    return Err(format!("unknown operator `{op}`"));
                }
                check_operators(args)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

thread_local! {
    /// Each thread's evaluation arena, reused (and emptied) call after call.
    static SESSION: RefCell<Session<'static>> = RefCell::new(engine().session());
}

/// Runs a compiled targeting rule against its data.
pub(crate) fn run(rule: &CompiledRule, data: &Value) -> Result<Value, String> {
    SESSION.with(|session| {
        let mut session = session.borrow_mut();
        session.reset();
        session
            .eval_into::<Value, _>(&rule.0, data)
            .map_err(|e| e.to_string())
    })
}
