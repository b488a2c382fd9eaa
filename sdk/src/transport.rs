//! How a client reaches NATS: its credential and TLS. The ECS server connects
//! with the same type, so both read the same settings the same way.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_nats::{ConnectOptions, ServerAddr};

/// How a connection proves who it is to NATS.
#[derive(Clone, Default)]
pub enum NatsAuth {
    /// No credential: a NATS server without authorization (development).
    #[default]
    None,
    /// A `.creds` file (a user JWT and its nkey seed), for operator mode.
    CredentialsFile(PathBuf),
    /// An nkey seed (`SU...`), as `ecs nats-credential` issues.
    Nkey(String),
    /// A user name and its password.
    UserPassword { user: String, password: String },
    /// A shared token.
    Token(String),
}

/// Secrets never reach `Debug` output (and so never a log line).
impl fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NatsAuth::None => f.write_str("None"),
            NatsAuth::CredentialsFile(path) => {
                f.debug_tuple("CredentialsFile").field(path).finish()
            }
            NatsAuth::Nkey(_) => f.write_str("Nkey(***)"),
            NatsAuth::UserPassword { user, .. } => f
                .debug_struct("UserPassword")
                .field("user", user)
                .field("password", &"***")
                .finish(),
            NatsAuth::Token(_) => f.write_str("Token(***)"),
        }
    }
}

/// The credential and TLS of a NATS connection.
#[derive(Debug, Clone, Default)]
pub struct NatsTransport {
    pub auth: NatsAuth,
    /// A PEM file of the certificate authorities that sign the NATS server's
    /// certificate. Setting it requires TLS; without it a `tls://` URL is
    /// verified against the system's roots.
    pub ca_file: Option<PathBuf>,
    /// A client certificate and its key (PEM files), for servers that verify
    /// their clients (`verify: true` in the server's `tls` block).
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// The prefix of this connection's reply subjects. A locked-down NATS lets
    /// a reader subscribe only below its own prefix, so that nobody reads the
    /// replies meant for others; by default it is `_INBOX.<identity>` for an
    /// nkey (its public key) or a user name, and `_INBOX` otherwise.
    pub inbox_prefix: Option<String>,
}

impl NatsTransport {
    /// The reply-subject prefix this connection uses (see `inbox_prefix`).
    pub fn inbox_prefix(&self) -> Result<Option<String>, String> {
        if let Some(prefix) = &self.inbox_prefix {
            return Ok(Some(prefix.clone()));
        }
        Ok(match &self.auth {
            NatsAuth::Nkey(seed) => Some(inbox_prefix_of(&nkey_public_key(seed)?)),
            NatsAuth::UserPassword { user, .. } => Some(inbox_prefix_of(user)),
            _ => None,
        })
    }

    /// Connection options carrying this credential and TLS.
    pub async fn connect_options(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<ConnectOptions, String> {
        let mut options = ConnectOptions::new().name(name).connection_timeout(timeout);
        options = match &self.auth {
            NatsAuth::None => options,
            NatsAuth::CredentialsFile(path) => options
                .credentials_file(path)
                .await
                .map_err(|e| format!("NATS credentials file {}: {e}", path.display()))?,
            NatsAuth::Nkey(seed) => {
                // Checked here so a bad seed is reported as such, not as a
                // failed handshake.
                nkey_public_key(seed)?;
                options.nkey(seed.clone())
            }
            NatsAuth::UserPassword { user, password } => {
                options.user_and_password(user.clone(), password.clone())
            }
            NatsAuth::Token(token) => options.token(token.clone()),
        };
        if let Some(ca) = &self.ca_file {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let Some((cert, key)) = &self.client_cert {
            options = options
                .add_client_certificate(cert.clone(), key.clone())
                .require_tls(true);
        }
        if let Some(prefix) = self.inbox_prefix()? {
            options = options.custom_inbox_prefix(prefix);
        }
        Ok(options)
    }
}

/// The servers of a NATS URL list: one URL, or several separated by commas
/// (`nats://a:4222,nats://b:4222`), the usual way to name the members of a
/// cluster. The client connects to one of them and fails over to the others
/// (and to the members the cluster announces). An entry is named by its
/// position, not its text, because a URL can carry a password or a token.
pub fn server_addrs(list: &str) -> Result<Vec<ServerAddr>, String> {
    let entries: Vec<&str> = list.split(',').map(str::trim).collect();
    let mut servers = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let position = index + 1;
        if entry.is_empty() {
            return Err(format!(
                "NATS server {position} of {} in the URL list is empty",
                entries.len()
            ));
        }
        let server = entry.parse::<ServerAddr>().map_err(|e| {
            format!(
                "NATS server {position} of {} in the URL list is not a valid URL: {}",
                entries.len(),
                e.kind()
            )
        })?;
        servers.push(server);
    }
    Ok(servers)
}

/// The reply-subject prefix of a reader identified by `identity` (an nkey's
/// public key or a user name): what its NATS permissions let it subscribe to.
pub fn inbox_prefix_of(identity: &str) -> String {
    format!("_INBOX.{identity}")
}

/// The public key (`U...`) of an nkey seed.
pub fn nkey_public_key(seed: &str) -> Result<String, String> {
    nkeys::KeyPair::from_seed(seed.trim())
        .map(|pair| pair.public_key())
        .map_err(|_| "the NATS nkey seed is not a valid seed (expected SU...)".to_owned())
}

#[cfg(test)]
mod tests {
    use super::server_addrs;

    #[test]
    fn a_comma_separated_list_names_every_server() {
        let servers = server_addrs("nats://a:4222, nats://u:p@b:4223,tls://c").unwrap();
        assert_eq!(servers.len(), 3);
        assert_eq!(servers[1].port(), 4223);
    }

    #[test]
    fn a_bad_entry_is_named_by_its_position_never_by_its_text() {
        let error = server_addrs("nats://a:4222,,nats://b").unwrap_err();
        assert!(error.contains("server 2 of 3"), "{error}");
        let error = server_addrs("nats://a:4222,nats://user:s3cret@b:notaport").unwrap_err();
        assert!(error.contains("server 2 of 2"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
    }
}
