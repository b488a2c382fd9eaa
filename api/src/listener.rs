//! The HTTP API's listener: plain TCP, or TLS when `ECS_TLS_CERT` and
//! `ECS_TLS_KEY` are set (`docs/operations.md`, "TLS").

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;
use tokio_util::either::Either;

/// One accepted connection: plain TCP, or TLS over it.
pub type Connection = Either<TcpStream, TlsStream<TcpStream>>;

/// How long a client has to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections for the HTTP API, completing TLS handshakes (when
/// configured) concurrently, so a slow client holds back no other.
pub struct HttpListener {
    tcp: TcpListener,
    tls: Option<Handshakes>,
}

struct Handshakes {
    acceptor: TlsAcceptor,
    running: JoinSet<(std::io::Result<TlsStream<TcpStream>>, SocketAddr)>,
}

impl HttpListener {
    /// A listener on `tcp`; with a certificate chain and key (PEM files), TLS.
    pub fn new(tcp: TcpListener, tls: Option<(&Path, &Path)>) -> anyhow::Result<HttpListener> {
        let tls = match tls {
            None => None,
            Some((cert, key)) => Some(Handshakes {
                acceptor: TlsAcceptor::from(Arc::new(server_config(cert, key)?)),
                running: JoinSet::new(),
            }),
        };
        Ok(HttpListener { tcp, tls })
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// The TLS configuration of a certificate chain and its key (PEM files).
fn server_config(cert: &Path, key: &Path) -> anyhow::Result<ServerConfig> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| {
            format!(
                "ECS_TLS_CERT {}: not a PEM certificate chain",
                cert.display()
            )
        })?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("ECS_TLS_KEY {}: not a PEM private key", key.display()))?;
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("ECS_TLS_CERT and ECS_TLS_KEY do not make a certificate and its key")?;
    // The server speaks HTTP/1.1 only (`crate::server`).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

impl axum::serve::Listener for HttpListener {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        let HttpListener { tcp, tls } = self;
        let Some(tls) = tls else {
            let (stream, address) = axum::serve::Listener::accept(tcp).await;
            no_delay(&stream);
            return (Either::Left(stream), address);
        };
        loop {
            tokio::select! {
                (stream, address) = axum::serve::Listener::accept(tcp) => {
                    no_delay(&stream);
                    let acceptor = tls.acceptor.clone();
                    tls.running.spawn(async move {
                        let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                            .await
                            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()));
                        (handshake, address)
                    });
                }
                Some(done) = tls.running.join_next(), if !tls.running.is_empty() => match done {
                    Ok((Ok(stream), address)) => return (Either::Right(stream), address),
                    Ok((Err(error), address)) => {
                        tracing::debug!(%error, %address, "TLS handshake failed");
                    }
                    Err(error) => tracing::warn!(%error, "TLS handshake task failed"),
                },
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// Answers go out as soon as they are written: small responses and
/// server-sent events must not wait for Nagle's algorithm.
fn no_delay(stream: &TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY");
    }
}
