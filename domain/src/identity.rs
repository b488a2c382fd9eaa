//! Who stands behind a credential, for separation of duties.
//!
//! A principal's name says which credential acted (`admin`, `token:<id>`,
//! `jwt:<sub>`); its identity says who holds it. An API key issued by a
//! principal that is not an admin belongs to that principal's identity, so a
//! tenant admin who issues itself an editor key is still the same person to
//! the approval rules. Keys an admin issues start identities of their own: an
//! admin provisions principals, and may change an approval policy anyway.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::role::Role;

/// The identity behind a principal: the root of its issuing chain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Identity(String);

impl Identity {
    /// An identity by its name. A principal that nothing issued (the
    /// bootstrap admin, a JWT subject) is its own identity: its name.
    pub fn new(name: impl Into<String>) -> Self {
        Identity(name.into())
    }

    /// The identity of API key `token_id`, issued by `issuer`.
    pub fn of_issued_key(token_id: &str, issuer: &Actor) -> Self {
        if issuer.role == Role::Admin {
            Identity(format!("token:{token_id}"))
        } else {
            issuer.identity.clone()
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who sends a command: the credential's name (recorded as the actor), its
/// role and the identity behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub name: String,
    pub role: Role,
    pub identity: Identity,
}
