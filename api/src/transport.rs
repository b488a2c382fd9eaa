//! The server's transport settings turned into connection options: its NATS
//! credential and TLS (`docs/operations.md`).

use std::path::{Path, PathBuf};

use anyhow::bail;
use ecs_client::{NatsAuth, NatsTransport};

use crate::Settings;

/// The NATS credential and TLS named by the settings. At most one credential
/// may be given: two would leave it unclear which one NATS checks.
pub fn nats_transport(settings: &Settings) -> anyhow::Result<NatsTransport> {
    let mut given = Vec::new();
    if let Some(path) = &settings.nats_creds {
        given.push(("ECS_NATS_CREDS", NatsAuth::CredentialsFile(path.into())));
    }
    if let Some(seed) = &settings.nats_nkey {
        given.push(("ECS_NATS_NKEY", NatsAuth::Nkey(seed.expose().to_owned())));
    }
    match (&settings.nats_user, &settings.nats_password) {
        (Some(user), Some(password)) => given.push((
            "ECS_NATS_USER",
            NatsAuth::UserPassword {
                user: user.clone(),
                password: password.expose().to_owned(),
            },
        )),
        (None, None) => {}
        _ => bail!("ECS_NATS_USER and ECS_NATS_PASSWORD go together"),
    }
    if let Some(token) = &settings.nats_token {
        given.push(("ECS_NATS_TOKEN", NatsAuth::Token(token.expose().to_owned())));
    }
    if given.len() > 1 {
        let names: Vec<&str> = given.iter().map(|(name, _)| *name).collect();
        bail!(
            "more than one NATS credential is set ({}): set exactly one",
            names.join(", ")
        );
    }
    let client_cert = match (&settings.nats_cert, &settings.nats_key) {
        (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
        (None, None) => None,
        _ => bail!("ECS_NATS_CERT and ECS_NATS_KEY go together"),
    };
    Ok(NatsTransport {
        auth: given.pop().map_or(NatsAuth::None, |(_, auth)| auth),
        ca_file: settings.nats_ca.as_ref().map(PathBuf::from),
        client_cert,
        // The server subscribes wherever it needs to: its replies keep the
        // default prefix.
        inbox_prefix: Some("_INBOX".to_owned()),
    })
}

/// The HTTP API's certificate chain and key files, when it serves HTTPS.
pub fn http_tls(settings: &Settings) -> anyhow::Result<Option<(&Path, &Path)>> {
    match (&settings.tls_cert, &settings.tls_key) {
        (Some(cert), Some(key)) => Ok(Some((Path::new(cert), Path::new(key)))),
        (None, None) => Ok(None),
        _ => bail!("ECS_TLS_CERT and ECS_TLS_KEY go together"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn one_nats_credential_at_most_and_pairs_complete() {
        let base = Settings::default();
        assert!(matches!(
            nats_transport(&base).unwrap().auth,
            NatsAuth::None
        ));
        let nkey = Settings {
            nats_nkey: Some("SU...".into()),
            ..base.clone()
        };
        assert!(matches!(
            nats_transport(&nkey).unwrap().auth,
            NatsAuth::Nkey(_)
        ));
        for (what, settings) in [
            (
                "nkey and token",
                Settings {
                    nats_token: Some("t".into()),
                    ..nkey.clone()
                },
            ),
            (
                "user without password",
                Settings {
                    nats_user: Some("ecs".into()),
                    ..base.clone()
                },
            ),
            (
                "certificate without key",
                Settings {
                    nats_cert: Some("cert.pem".into()),
                    ..base.clone()
                },
            ),
        ] {
            assert!(nats_transport(&settings).is_err(), "{what} was accepted");
        }
        let https = Settings {
            tls_key: Some("key.pem".into()),
            ..base
        };
        assert!(
            http_tls(&https).is_err(),
            "a key without a certificate was accepted"
        );
    }
}
