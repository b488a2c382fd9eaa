//! Rollout plans: a flag's percentage split moved through steps at given
//! times (5 % → 25 % → 100 %). Pure: the plan, its validation, which step is
//! due and the layer values a step writes; the server stores plans and
//! applies due steps as ordinary layer writes.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::{NamespaceName, Scope};

/// One step: from `at` on, `percent` % of targeting keys get the rolled-out
/// variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutStep {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub percent: u8,
}

/// Where a plan stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RolloutStatus {
    /// Steps are applied when due.
    Active,
    /// No step is applied until resumed; steps that fall due meanwhile are
    /// applied (the latest of them) on resume.
    Paused,
    /// Ended before its last step; no step is applied any more.
    Cancelled,
    /// Every step is applied.
    Completed,
}

/// A rollout plan of one flag in one layer of a flags namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutPlan {
    pub id: String,
    pub namespace: NamespaceName,
    pub scope: Scope,
    pub flag: String,
    /// The variant being rolled out (gets `percent` %).
    pub variant: String,
    /// The variant the other targeting keys get.
    pub otherwise: String,
    pub steps: Vec<RolloutStep>,
    /// How many steps are applied (the first `applied` of `steps`).
    pub applied: usize,
    pub status: RolloutStatus,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Why the due step could not be applied at the last attempt (it is
    /// tried again every second); cleared when a step applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Why a plan is refused: the offending field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError {
    pub field: String,
    pub detail: String,
}

impl PlanError {
    fn new(field: impl Into<String>, detail: impl Into<String>) -> Self {
        PlanError {
            field: field.into(),
            detail: detail.into(),
        }
    }
}

/// The most steps a plan takes.
pub const MAX_STEPS: usize = 100;

/// Checks steps: at least one, at most [`MAX_STEPS`], percentages 0 to 100,
/// times in the future and strictly increasing.
pub fn validate_steps(steps: &[RolloutStep], now: OffsetDateTime) -> Result<(), PlanError> {
    if steps.is_empty() {
        return Err(PlanError::new("/steps", "a plan needs at least one step"));
    }
    if steps.len() > MAX_STEPS {
        return Err(PlanError::new(
            "/steps",
            format!("a plan takes at most {MAX_STEPS} steps"),
        ));
    }
    for (i, step) in steps.iter().enumerate() {
        if step.percent > 100 {
            return Err(PlanError::new(
                format!("/steps/{i}/percent"),
                "percent must be 0 to 100",
            ));
        }
        if step.at <= now {
            return Err(PlanError::new(
                format!("/steps/{i}/at"),
                "the step's time is not in the future",
            ));
        }
        if i > 0 && step.at <= steps[i - 1].at {
            return Err(PlanError::new(
                format!("/steps/{i}/at"),
                "step times must increase",
            ));
        }
    }
    Ok(())
}

/// The two variants a rollout of `flag` (its flagd definition) splits
/// between, for a flag with exactly two variants: those of its current
/// two-way `fractional` rollout, else the non-default variant first and the
/// default second (as Studio's flags screen chooses).
pub fn rollout_variants(flag: &Value) -> Option<(String, String)> {
    let mut names: Vec<&String> = flag.get("variants")?.as_object()?.keys().collect();
    names.sort();
    let [a, b] = names.as_slice() else {
        return None;
    };
    if let Some((first, second)) = current_split(flag.get("targeting"))
        && first != second
        && names.contains(&&first)
        && names.contains(&&second)
    {
        return Some((first, second));
    }
    let default = flag.get("defaultVariant").and_then(Value::as_str);
    if default == Some(a.as_str()) {
        Some(((*b).clone(), (*a).clone()))
    } else {
        Some(((*a).clone(), (*b).clone()))
    }
}

/// The variants of a targeting rule that is exactly a two-way `fractional`.
fn current_split(targeting: Option<&Value>) -> Option<(String, String)> {
    let targeting = targeting?.as_object()?;
    if targeting.len() != 1 {
        return None;
    }
    let [a, b] = targeting.get("fractional")?.as_array()?.as_slice() else {
        return None;
    };
    let name = |v: &Value| Some(v.as_array()?.first()?.as_str()?.to_owned());
    Some((name(a)?, name(b)?))
}

/// flagd targeting giving `percent` % of targeting keys `variant` and the
/// rest `otherwise`, sticky per key.
pub fn split_targeting(variant: &str, otherwise: &str, percent: u8) -> Value {
    json!({ "fractional": [[variant, percent], [otherwise, 100 - percent.min(100)]] })
}

impl RolloutPlan {
    /// The index of the step to apply at `now`: the latest step due, when the
    /// plan is active and it is not applied yet (steps that fell due together,
    /// after a pause or a downtime, apply as their latest).
    pub fn due(&self, now: OffsetDateTime) -> Option<usize> {
        if self.status != RolloutStatus::Active {
            return None;
        }
        let due = self.steps.iter().take_while(|s| s.at <= now).count();
        (due > self.applied).then(|| due - 1)
    }

    /// The plan once step `index` is applied.
    pub fn step_applied(&mut self, index: usize) {
        self.applied = self.applied.max(index + 1);
        self.last_error = None;
        if self.applied >= self.steps.len() && self.status == RolloutStatus::Active {
            self.status = RolloutStatus::Completed;
        }
    }

    /// The layer's `values` with step `index`'s split set as the flag's
    /// targeting; `None` when the layer no longer defines the flag.
    pub fn values_at_step(&self, values: &Value, index: usize) -> Option<Value> {
        let step = self.steps.get(index)?;
        let mut values = values.clone();
        let flag = values
            .get_mut("flags")?
            .get_mut(&self.flag)?
            .as_object_mut()?;
        flag.insert(
            "targeting".to_owned(),
            split_targeting(&self.variant, &self.otherwise, step.percent),
        );
        Some(values)
    }

    /// The flag's definition in a layer's values.
    pub fn flag_in<'a>(values: &'a Value, flag: &str) -> Option<&'a Map<String, Value>> {
        values.get("flags")?.get(flag)?.as_object()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::seconds(seconds)
    }

    fn step(seconds: i64, percent: u8) -> RolloutStep {
        RolloutStep {
            at: at(seconds),
            percent,
        }
    }

    fn plan(steps: Vec<RolloutStep>) -> RolloutPlan {
        RolloutPlan {
            id: "p".into(),
            namespace: "flags".parse().unwrap(),
            scope: Scope::global(),
            flag: "new-ui".into(),
            variant: "on".into(),
            otherwise: "off".into(),
            steps,
            applied: 0,
            status: RolloutStatus::Active,
            created_by: "admin".into(),
            created_at: at(0),
            last_error: None,
        }
    }

    #[test]
    fn steps_are_refused_naming_the_field() {
        let now = at(10);
        let field = |steps: &[RolloutStep]| validate_steps(steps, now).err().map(|e| e.field);
        assert_eq!(field(&[]), Some("/steps".into()));
        assert_eq!(field(&[step(20, 101)]), Some("/steps/0/percent".into()));
        assert_eq!(field(&[step(10, 5)]), Some("/steps/0/at".into()));
        assert_eq!(
            field(&[step(20, 5), step(20, 25)]),
            Some("/steps/1/at".into())
        );
        assert_eq!(field(&[step(20, 5), step(30, 25), step(40, 100)]), None);
    }

    #[test]
    fn the_latest_due_step_is_due_once_and_only_while_active() {
        let mut p = plan(vec![step(10, 5), step(20, 25), step(30, 100)]);
        assert_eq!(p.due(at(9)), None);
        assert_eq!(p.due(at(10)), Some(0));
        p.step_applied(0);
        assert_eq!(p.due(at(15)), None);
        assert_eq!(p.due(at(35)), Some(2));
        p.status = RolloutStatus::Paused;
        assert_eq!(p.due(at(35)), None);
        p.status = RolloutStatus::Active;
        p.step_applied(2);
        assert_eq!(p.status, RolloutStatus::Completed);
        assert_eq!(p.due(at(99)), None);
    }

    #[test]
    fn a_step_sets_the_flags_split_and_keeps_the_rest() {
        let p = plan(vec![step(10, 25)]);
        let values = json!({"flags": {
            "new-ui": {"state": "ENABLED", "variants": {"on": true, "off": false},
                       "defaultVariant": "off", "targeting": {"if": [true, "on", "off"]}},
            "other": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a"}
        }});
        let next = p.values_at_step(&values, 0).unwrap();
        assert_eq!(
            next["flags"]["new-ui"]["targeting"],
            json!({"fractional": [["on", 25], ["off", 75]]})
        );
        assert_eq!(next["flags"]["other"], values["flags"]["other"]);
        assert!(p.values_at_step(&json!({"flags": {}}), 0).is_none());
    }

    #[test]
    fn variants_follow_the_current_split_else_the_non_default_first() {
        let flag = json!({"variants": {"on": true, "off": false}, "defaultVariant": "off"});
        assert_eq!(rollout_variants(&flag), Some(("on".into(), "off".into())));
        let flag = json!({"variants": {"on": true, "off": false}, "defaultVariant": "on"});
        assert_eq!(rollout_variants(&flag), Some(("off".into(), "on".into())));
        let flag = json!({"variants": {"on": true, "off": false}, "defaultVariant": "off",
                          "targeting": {"fractional": [["off", 50], ["on", 50]]}});
        assert_eq!(rollout_variants(&flag), Some(("off".into(), "on".into())));
        let flag = json!({"variants": {"a": 1, "b": 2, "c": 3}, "defaultVariant": "a"});
        assert_eq!(rollout_variants(&flag), None);
    }
}
