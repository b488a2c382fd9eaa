//! Validated identifiers. Every identifier that reaches a NATS subject or a
//! database key passes through here first ("parse, don't validate"): a value of
//! these types always matches `[A-Za-z0-9][A-Za-z0-9_-]{0,63}`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// The longest identifier accepted, in bytes.
pub const MAX_ID_LEN: usize = 64;

/// Why an identifier was refused; `field` names the input it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field} {value:?}: {reason}")]
pub struct IdError {
    pub field: &'static str,
    pub value: String,
    pub reason: &'static str,
}

fn check(field: &'static str, value: &str) -> Result<(), IdError> {
    let fail = |reason| {
        Err(IdError {
            field,
            value: value.chars().take(MAX_ID_LEN + 8).collect(),
            reason,
        })
    };
    let mut chars = value.chars();
    match chars.next() {
        None => return fail("must not be empty"),
        Some(c) if !c.is_ascii_alphanumeric() => return fail("must start with a letter or digit"),
        Some(_) => {}
    }
    if value.len() > MAX_ID_LEN {
        return fail("must be at most 64 characters");
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return fail("may contain only letters, digits, '-' and '_'");
    }
    Ok(())
}

/// An id ECS generates (a token's, a change request's): letters and digits
/// only, as the server issues them, so a look-alike never reaches a lookup.
fn check_generated(field: &'static str, value: &str) -> Result<(), IdError> {
    let fail = |reason| {
        Err(IdError {
            field,
            value: value.chars().take(MAX_ID_LEN + 8).collect(),
            reason,
        })
    };
    if value.is_empty() {
        return fail("must not be empty");
    }
    if value.len() > MAX_ID_LEN {
        return fail("must be at most 64 characters");
    }
    if !value.chars().all(|c| c.is_ascii_alphanumeric()) {
        return fail("may contain only letters and digits");
    }
    Ok(())
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        identifier!($(#[$doc])* $name, $field, check);
    };
    ($(#[$doc:meta])* $name:ident, $field:literal, $check:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The input name used in error messages.
            pub const FIELD: &'static str = $field;

            /// Parses and validates an identifier.
            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                $check($field, &value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(value: &str) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = String::deserialize(deserializer)?;
                Self::parse(value).map_err(serde::de::Error::custom)
            }
        }
    };
}

identifier!(
    /// A namespace: one configuration document owned by a product area.
    NamespaceName,
    "namespace"
);
identifier!(
    /// A tenant of the SaaS product that uses ECS.
    TenantId,
    "tenant"
);
identifier!(
    /// A deployment environment such as `prod`.
    EnvName,
    "env"
);
identifier!(
    /// A service name.
    ServiceName,
    "service"
);
identifier!(
    /// A product edition such as `enterprise`.
    EditionName,
    "edition"
);

identifier!(
    /// One running SDK client, unique per process (drift reports, ADR 24).
    InstanceId,
    "instance"
);

identifier!(
    /// An API key's id: the part of the key before `_`.
    TokenId,
    "token",
    check_generated
);
identifier!(
    /// A change request's id.
    ChangeRequestId,
    "change request",
    check_generated
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_safe_identifiers() {
        for ok in ["a", "acme", "Acme-Corp_2", "0", &"x".repeat(64)] {
            assert!(TenantId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_unsafe_identifiers() {
        for bad in [
            "",
            "_",
            "-a",
            "a.b",
            "a b",
            "a*",
            "a>",
            "ü",
            "../etc",
            &"x".repeat(65),
        ] {
            let err = TenantId::parse(bad).unwrap_err();
            assert_eq!(err.field, "tenant");
        }
    }

    #[test]
    fn generated_ids_are_letters_and_digits() {
        for ok in ["a", "0f3c9a", &"x".repeat(64)] {
            assert!(TokenId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a_b", "a-b", "a.b", "ü", &"x".repeat(65)] {
            let err = ChangeRequestId::parse(bad).unwrap_err();
            assert_eq!(err.field, "change request");
        }
    }

    #[test]
    fn deserialization_validates() {
        assert!(serde_json::from_str::<EnvName>("\"prod\"").is_ok());
        assert!(serde_json::from_str::<EnvName>("\"a.b\"").is_err());
    }
}
