//! Resolving secret references (`{"$secret": "<scheme>://..."}`) into values,
//! in the service, at the last moment.
//!
//! ECS stores and distributes references only. A service registers a
//! [`SecretResolver`] per scheme in its [`ClientSettings`](crate::ClientSettings)
//! and asks [`Client::resolve_secrets`](crate::Client::resolve_secrets) for a
//! document with every reference replaced by its value. Two resolvers are built
//! in: [`EnvResolver`] (`env://VAR_NAME`) and [`FileResolver`]
//! (`file:///run/secrets/db`). None is registered by default: a service opts in
//! to each source a layer's author may point it at.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ecs_domain::secrets::{is_secret_like, parse_secret_ref};
use serde_json::Value;

pub use ecs_domain::SecretRef;

use crate::ClientError;

/// Turns references of one scheme into secret values. Implement it for a
/// vault, a cloud secret manager or anything else; register it with
/// [`ClientSettings::with_secret_resolver`](crate::ClientSettings::with_secret_resolver).
///
/// Errors should name the reference, never the secret.
pub trait SecretResolver: Send + Sync {
    /// The scheme this resolver handles, such as `vault` (without `://`).
    fn scheme(&self) -> &str;

    /// The secret a reference points to.
    fn resolve(&self, reference: &SecretRef) -> Result<String, ClientError>;
}

/// The registered resolvers, one per scheme (a later registration for the same
/// scheme replaces an earlier one).
#[derive(Clone, Default)]
pub struct SecretResolvers(Vec<Arc<dyn SecretResolver>>);

impl SecretResolvers {
    /// Registers a resolver, replacing any for the same scheme.
    pub fn register(&mut self, resolver: Arc<dyn SecretResolver>) {
        self.0
            .retain(|r| !r.scheme().eq_ignore_ascii_case(resolver.scheme()));
        self.0.push(resolver);
    }

    /// The resolver for a scheme (ASCII case-insensitive).
    pub fn get(&self, scheme: &str) -> Option<&Arc<dyn SecretResolver>> {
        self.0
            .iter()
            .find(|r| r.scheme().eq_ignore_ascii_case(scheme))
    }

    /// The registered schemes.
    pub fn schemes(&self) -> Vec<&str> {
        self.0.iter().map(|r| r.scheme()).collect()
    }

    /// `values` with every secret reference replaced by its secret. Fails on
    /// the first reference that cannot be resolved (unknown scheme, malformed,
    /// the resolver's error), naming its pointer.
    pub fn resolve_document(&self, values: &Value) -> Result<Value, ClientError> {
        let mut out = values.clone();
        self.replace(&mut out, String::new())?;
        Ok(out)
    }

    fn replace(&self, value: &mut Value, pointer: String) -> Result<(), ClientError> {
        if is_secret_like(value) {
            let reference = parse_secret_ref(value).map_err(|reason| ClientError::Secret {
                pointer: pointer_or_root(&pointer),
                reason: format!("malformed secret reference: {reason}"),
            })?;
            let resolver = self
                .get(reference.scheme())
                .ok_or_else(|| ClientError::Secret {
                    pointer: pointer_or_root(&pointer),
                    reason: format!(
                        "no secret resolver for scheme {:?} (reference {}; registered: {})",
                        reference.scheme(),
                        reference,
                        match self.schemes() {
                            schemes if schemes.is_empty() => "none".to_owned(),
                            schemes => schemes.join(", "),
                        }
                    ),
                })?;
            let secret = resolver.resolve(&reference).map_err(|error| {
                let reason = match error {
                    ClientError::Secret { reason, .. } => reason,
                    other => other.to_string(),
                };
                ClientError::Secret {
                    pointer: pointer_or_root(&pointer),
                    reason: format!("{reference}: {reason}"),
                }
            })?;
            *value = Value::String(secret);
            return Ok(());
        }
        match value {
            Value::Object(map) => {
                for (key, child) in map.iter_mut() {
                    self.replace(child, ecs_domain::json::child_pointer(&pointer, key))?;
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter_mut().enumerate() {
                    self.replace(child, format!("{pointer}/{i}"))?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn pointer_or_root(pointer: &str) -> String {
    if pointer.is_empty() {
        "/".to_owned()
    } else {
        pointer.to_owned()
    }
}

impl fmt::Debug for SecretResolvers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.schemes()).finish()
    }
}

/// A resolver error (for [`SecretResolver`] implementations): the reason,
/// without the secret.
pub fn secret_error(reason: impl Into<String>) -> ClientError {
    ClientError::Secret {
        pointer: String::new(),
        reason: reason.into(),
    }
}

/// `env://VAR_NAME`: the value of an environment variable of the service's
/// process, optionally only of variables with a given prefix.
#[derive(Debug, Clone, Default)]
pub struct EnvResolver {
    prefix: Option<String>,
}

impl EnvResolver {
    /// Resolves any environment variable.
    pub fn new() -> Self {
        EnvResolver::default()
    }

    /// Resolves only variables whose name starts with `prefix`.
    pub fn with_prefix(prefix: impl Into<String>) -> Self {
        EnvResolver {
            prefix: Some(prefix.into()),
        }
    }
}

impl SecretResolver for EnvResolver {
    fn scheme(&self) -> &str {
        "env"
    }

    fn resolve(&self, reference: &SecretRef) -> Result<String, ClientError> {
        let name = reference.rest();
        if let Some(prefix) = &self.prefix
            && !name.starts_with(prefix.as_str())
        {
            return Err(secret_error(format!(
                "only environment variables starting with {prefix:?} may be referenced"
            )));
        }
        if name.contains('=') || name.contains('\0') {
            return Err(secret_error(format!(
                "{name:?} is not an environment variable name"
            )));
        }
        match std::env::var(name) {
            Ok(value) => Ok(value),
            Err(std::env::VarError::NotPresent) => Err(secret_error(format!(
                "the environment variable {name} is not set"
            ))),
            Err(std::env::VarError::NotUnicode(_)) => Err(secret_error(format!(
                "the environment variable {name} is not valid UTF-8"
            ))),
        }
    }
}

/// `file:///absolute/path`: the contents of a file (such as a mounted
/// Kubernetes or Docker secret), without its trailing newline; optionally only
/// files inside a base directory.
#[derive(Debug, Clone, Default)]
pub struct FileResolver {
    base: Option<PathBuf>,
}

impl FileResolver {
    /// Reads any file the process may read.
    pub fn new() -> Self {
        FileResolver::default()
    }

    /// Reads only files inside `base` (after resolving `..` and symbolic
    /// links), such as `/run/secrets`.
    pub fn within(base: impl Into<PathBuf>) -> Self {
        FileResolver {
            base: Some(base.into()),
        }
    }
}

impl SecretResolver for FileResolver {
    fn scheme(&self) -> &str {
        "file"
    }

    fn resolve(&self, reference: &SecretRef) -> Result<String, ClientError> {
        let path = Path::new(reference.rest());
        if !path.is_absolute() {
            return Err(secret_error(
                "a file reference names an absolute path: file:///path/to/file",
            ));
        }
        let canonical = path
            .canonicalize()
            .map_err(|error| secret_error(format!("cannot open {}: {error}", path.display())))?;
        if let Some(base) = &self.base {
            let base = base.canonicalize().map_err(|error| {
                secret_error(format!(
                    "the secrets directory {} is unusable: {error}",
                    base.display()
                ))
            })?;
            if !canonical.starts_with(&base) {
                return Err(secret_error(format!(
                    "{} is outside the secrets directory {}",
                    path.display(),
                    base.display()
                )));
            }
        }
        let mut contents = std::fs::read_to_string(&canonical)
            .map_err(|error| secret_error(format!("cannot read {}: {error}", path.display())))?;
        if contents.ends_with('\n') {
            contents.pop();
            if contents.ends_with('\r') {
                contents.pop();
            }
        }
        Ok(contents)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    struct Fixed;

    impl SecretResolver for Fixed {
        fn scheme(&self) -> &str {
            "vault"
        }

        fn resolve(&self, reference: &SecretRef) -> Result<String, ClientError> {
            match reference.fragment() {
                Some("password") => Ok(format!("pw-of-{}", reference.path())),
                _ => Err(secret_error("no such key")),
            }
        }
    }

    fn resolvers() -> SecretResolvers {
        let mut resolvers = SecretResolvers::default();
        resolvers.register(Arc::new(Fixed));
        resolvers.register(Arc::new(EnvResolver::new()));
        resolvers
    }

    #[test]
    fn replaces_every_reference() {
        let doc = json!({
            "db": {"password": {"$secret": "vault://kv/app#password"}, "user": "app"},
            "list": [{"$secret": "VAULT://x#password"}]
        });
        assert_eq!(
            resolvers().resolve_document(&doc).unwrap(),
            json!({"db": {"password": "pw-of-kv/app", "user": "app"}, "list": ["pw-of-x"]})
        );
    }

    #[test]
    fn errors_name_the_pointer_and_the_scheme() {
        let doc = json!({"a": {"b": {"$secret": "aws://sm/x"}}});
        let error = resolvers().resolve_document(&doc).unwrap_err();
        let text = error.to_string();
        assert!(matches!(&error, ClientError::Secret { pointer, .. } if pointer == "/a/b"));
        assert!(text.contains("/a/b") && text.contains("\"aws\""), "{text}");

        let doc = json!({"k": {"$secret": "vault://kv/app#other"}});
        let text = resolvers().resolve_document(&doc).unwrap_err().to_string();
        assert!(
            text.contains("/k") && text.contains("no such key"),
            "{text}"
        );

        let doc = json!({"k": {"$secret": "vault://x", "extra": 1}});
        let text = resolvers().resolve_document(&doc).unwrap_err().to_string();
        assert!(text.contains("malformed"), "{text}");
    }

    #[test]
    fn file_resolver_trims_and_confines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        std::fs::write(&path, "s3cr3t\n").unwrap();
        let reference = SecretRef::parse(&format!("file://{}", path.display())).unwrap();
        assert_eq!(FileResolver::new().resolve(&reference).unwrap(), "s3cr3t");
        assert_eq!(
            FileResolver::within(dir.path())
                .resolve(&reference)
                .unwrap(),
            "s3cr3t"
        );
        let other = tempfile::tempdir().unwrap();
        assert!(
            FileResolver::within(other.path())
                .resolve(&reference)
                .is_err()
        );
        let escape = SecretRef::parse(&format!(
            "file://{}/../{}/db",
            other.path().display(),
            dir.path().file_name().unwrap().to_string_lossy()
        ))
        .unwrap();
        assert!(FileResolver::new().resolve(&escape).is_ok());
        assert!(FileResolver::within(other.path()).resolve(&escape).is_err());
        let relative = SecretRef::parse("file://db").unwrap();
        assert!(FileResolver::new().resolve(&relative).is_err());
    }

    #[test]
    fn env_resolver_honours_its_prefix() {
        let reference = SecretRef::parse("env://PATH").unwrap();
        assert!(EnvResolver::new().resolve(&reference).is_ok());
        assert!(
            EnvResolver::with_prefix("APP_")
                .resolve(&reference)
                .is_err()
        );
        let missing = SecretRef::parse("env://ECS_SURELY_NOT_SET_4711").unwrap();
        let text = EnvResolver::new()
            .resolve(&missing)
            .unwrap_err()
            .to_string();
        assert!(text.contains("ECS_SURELY_NOT_SET_4711"), "{text}");
    }
}
