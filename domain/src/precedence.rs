//! The order in which the dimensions of a scope weigh during resolution.

use std::fmt;
use std::str::FromStr;

use crate::dimension::Dimension;
use crate::scope::Scope;

/// The precedence chain, weakest dimension first. Of two layers, the one that
/// fixes the latest dimension in the chain that the other does not fix wins;
/// equivalently layers apply in ascending order of the summed weights
/// `2^index` of the dimensions they fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Precedence([Dimension; 4]);

impl Default for Precedence {
    /// global → env → service → tenant → edition.
    fn default() -> Self {
        Precedence(Dimension::ALL)
    }
}

/// A precedence setting that is not a permutation of the four dimensions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid precedence {0:?}: list env, service, tenant and edition once each, comma-separated, weakest first"
)]
pub struct PrecedenceError(pub String);

impl Precedence {
    pub fn new(order: [Dimension; 4]) -> Result<Self, PrecedenceError> {
        let all_present = Dimension::ALL.iter().all(|d| order.contains(d));
        if all_present {
            Ok(Precedence(order))
        } else {
            Err(PrecedenceError(format!("{order:?}")))
        }
    }

    pub fn order(&self) -> [Dimension; 4] {
        self.0
    }

    /// The weight of a scope: layers apply in ascending weight.
    pub fn weight(&self, scope: &Scope) -> u8 {
        self.0
            .iter()
            .enumerate()
            .filter(|(_, d)| scope.fixes(**d))
            .map(|(i, _)| 1u8 << i)
            .sum()
    }
}

impl FromStr for Precedence {
    type Err = PrecedenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let err = || PrecedenceError(s.to_owned());
        if parts.len() != 4 {
            return Err(err());
        }
        let mut order = [Dimension::Env; 4];
        for (slot, part) in order.iter_mut().zip(&parts) {
            *slot = Dimension::ALL
                .into_iter()
                .find(|d| d.name() == *part)
                .ok_or_else(err)?;
        }
        Precedence::new(order).map_err(|_| err())
    }
}

impl fmt::Display for Precedence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|d| d.name()).collect();
        f.write_str(&names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let p: Precedence = "env,service,edition,tenant".parse().unwrap();
        assert_eq!(p.to_string(), "env,service,edition,tenant");
        assert_eq!(
            Precedence::default().to_string(),
            "env,service,tenant,edition"
        );
    }

    #[test]
    fn refuses_non_permutations() {
        for bad in [
            "",
            "env",
            "env,env,tenant,edition",
            "env,service,tenant,region",
            "env,service,tenant,edition,env",
        ] {
            assert!(bad.parse::<Precedence>().is_err(), "{bad}");
        }
    }
}
