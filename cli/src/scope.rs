//! Scopes and contexts on the command line: `env=prod,tenant=acme`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde_json::Value;

/// A dimension of a scope, in the default precedence order (weakest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dimension {
    Env,
    Service,
    Tenant,
    Edition,
}

impl Dimension {
    pub const ALL: [Dimension; 4] = [
        Dimension::Env,
        Dimension::Service,
        Dimension::Tenant,
        Dimension::Edition,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Dimension::Env => "env",
            Dimension::Service => "service",
            Dimension::Tenant => "tenant",
            Dimension::Edition => "edition",
        }
    }

    fn parse(name: &str) -> Option<Dimension> {
        Dimension::ALL.into_iter().find(|d| d.name() == name)
    }
}

/// A layer's scope or a reader's context; empty is the global scope.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope(BTreeMap<Dimension, String>);

/// How the global scope is written (it has no `=`, so it is never a pair).
pub const GLOBAL: &str = "global";

impl Scope {
    pub fn is_global(&self) -> bool {
        self.0.is_empty()
    }

    /// How many dimensions it names (more: narrower).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn tenant(&self) -> Option<&str> {
        self.0.get(&Dimension::Tenant).map(String::as_str)
    }

    /// The query parameters naming it.
    pub fn query(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .map(|(d, v)| (d.name().to_owned(), v.clone()))
            .collect()
    }

    /// From the API's JSON shape, `{"env": "prod"}`.
    pub fn from_json(value: &Value) -> Option<Scope> {
        let mut scope = BTreeMap::new();
        for (key, value) in value.as_object()? {
            if value.is_null() {
                continue;
            }
            scope.insert(Dimension::parse(key)?, value.as_str()?.to_owned());
        }
        Some(Scope(scope))
    }

    pub fn to_json(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(d, v)| (d.name().to_owned(), Value::String(v.clone())))
                .collect(),
        )
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str(GLOBAL);
        }
        let pairs: Vec<String> = self
            .0
            .iter()
            .map(|(d, v)| format!("{}={v}", d.name()))
            .collect();
        f.write_str(&pairs.join(","))
    }
}

impl FromStr for Scope {
    type Err = String;

    /// `env=prod,tenant=acme`; `global` or the empty string: the global scope.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let mut scope = BTreeMap::new();
        if text.is_empty() || text == GLOBAL {
            return Ok(Scope(scope));
        }
        for pair in text.split(',') {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("`{pair}` is not DIMENSION=VALUE"))?;
            let dimension = Dimension::parse(key.trim()).ok_or_else(|| {
                format!("`{key}` is not a dimension (env, service, tenant, edition)")
            })?;
            let value = value.trim();
            if value.is_empty() {
                return Err(format!("{key} needs a value"));
            }
            if scope.insert(dimension, value.to_owned()).is_some() {
                return Err(format!("{key} is repeated"));
            }
        }
        Ok(Scope(scope))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_in_precedence_order() {
        let scope: Scope = "tenant=acme,env=prod".parse().expect("scope");
        assert_eq!(scope.to_string(), "env=prod,tenant=acme");
        assert_eq!("global".parse::<Scope>().expect("global"), Scope::default());
        assert!("region=eu".parse::<Scope>().is_err());
        assert!("env=a,env=b".parse::<Scope>().is_err());
    }
}
