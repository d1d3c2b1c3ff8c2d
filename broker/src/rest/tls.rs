//! TLS for the `https://` REST listeners (`rest.tls.cert`, `rest.tls.key`; rustls with ring,
//! the provider the rest of the broker uses). Handshakes run in their own tasks, at most
//! `MAX_HANDSHAKES` at once and each for at most `HANDSHAKE_TIMEOUT`, so a client that connects
//! and says nothing holds one slot for a while, never the acceptor; finished connections are
//! handed to axum through `TlsListener`.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

const MAX_HANDSHAKES: usize = 256;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The certificate and key files of the https listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: String,
    pub key: String,
}

/// Reads the certificate chain and key; the error names the setting and the file.
pub fn server_config(files: &TlsFiles) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let read = |setting: &str, path: &str| std::fs::read(path).map_err(|e| anyhow::anyhow!("{setting}={path}: cannot read: {e}"));
    let cert_pem = read("rest.tls.cert", &files.cert)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("rest.tls.cert={}: not PEM: {e}", files.cert))?;
    if certs.is_empty() {
        anyhow::bail!("rest.tls.cert={}: no PEM certificate in the file", files.cert);
    }
    let key_pem = read("rest.tls.key", &files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| anyhow::anyhow!("rest.tls.key={}: no PEM private key in the file ({e})", files.key))?;
    // ring is the only rustls provider built in, so it is the default one.
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| anyhow::anyhow!("rest.tls.key={}: does not go with rest.tls.cert={}: {e}", files.key, files.cert))?;
    // The proxy speaks HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// On an https listener: the request came over TLS, whatever the client's own
/// `X-Forwarded-Proto` said, so the links in the answers are `https://`.
pub async fn mark_https(mut request: axum::extract::Request) -> axum::extract::Request {
    request.headers_mut().insert("x-forwarded-proto", axum::http::HeaderValue::from_static("https"));
    request
}

/// Whether the request came over https: from an `https://` listener ([`mark_https`]), or
/// through a TLS-terminating proxy that said so in `X-Forwarded-Proto`.
pub fn came_over_https(headers: &axum::http::HeaderMap) -> bool {
    headers.get("x-forwarded-proto").is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// An `axum::serve` listener of TLS connections whose handshake has finished.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    acceptor: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let acceptor = tokio::spawn(accept_loop(tcp, TlsAcceptor::from(config), tx));
        Ok(Self { ready, local, acceptor })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

async fn accept_loop(tcp: TcpListener, acceptor: TlsAcceptor, ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>) {
    let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let (stream, peer) = match tcp.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::debug!(target: "kafka.rest", error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = ready.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(target: "kafka.rest", peer = %peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(target: "kafka.rest", peer = %peer, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The acceptor stopped (it only does when aborted): no more connections.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
