//! The four dimensions a scope may fix.

use serde::{Deserialize, Serialize};

/// One of the four dimensions a scope may fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
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
}
