//! The JsonLogic engine with flagd's custom operators.
//!
//! `datalogic-rs` implements `fractional` and `sem_ver` (feature `flagd`,
//! bucketing with MurmurHash3 x86_32 exactly as flagd does) and
//! `starts_with`/`ends_with` (feature `ext-string`), so no operator is
//! written here.

use std::sync::OnceLock;

use datalogic_rs::Engine;
use serde_json::Value;

/// The engine shared by every evaluation; it holds no per-call state.
pub(crate) fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(Engine::new)
}

/// Checks that a targeting rule uses only known operators and compiles,
/// returning the offending operator or the engine's message when it does not.
pub(crate) fn check(rule: &Value) -> Result<(), String> {
    check_operators(rule)?;
    engine()
        .compile(rule)
        .map(|_| ())
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

/// Evaluates a targeting rule against its data.
pub(crate) fn run(rule: &Value, data: &Value) -> Result<Value, String> {
    engine()
        .eval_into::<Value, _, _>(rule, data)
        .map_err(|e| e.to_string())
}
