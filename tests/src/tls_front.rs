//! A TLS front for a broker: terminates TLS, requires a client certificate
//! signed by a given CA, and passes the bytes on to the broker's plaintext
//! port. Stands in for a Kafka cluster that only speaks mutual TLS.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// What the front has seen since it started.
#[derive(Debug, Default)]
pub struct FrontCounts {
    /// TLS handshakes attempted.
    pub handshakes: AtomicUsize,
    /// Handshakes refused by TLS, most often for a client certificate the
    /// CA did not sign.
    pub refused: AtomicUsize,
}

pub struct TlsFront {
    pub port: u16,
    pub counts: Arc<FrontCounts>,
    task: JoinHandle<()>,
}

impl TlsFront {
    /// Listens on `port` (on every loopback name) with the certificate and
    /// key given, trusting client certificates signed by `client_ca`, and
    /// forwards each connection to `upstream`.
    pub async fn start(
        port: u16,
        upstream: String,
        client_ca: &Path,
        cert: &Path,
        key: &Path,
    ) -> TlsFront {
        let files = freeport_common::tls::TlsFiles {
            ca: client_ca.to_path_buf(),
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        };
        let config = files
            .load()
            .and_then(|tls| tls.rustls_server_config())
            .expect("front TLS config");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("front listener");
        let counts = Arc::new(FrontCounts::default());
        let seen = counts.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let upstream = upstream.clone();
                let seen = seen.clone();
                tokio::spawn(async move {
                    seen.handshakes.fetch_add(1, Ordering::Relaxed);
                    let mut tls = match acceptor.accept(tcp).await {
                        Ok(tls) => tls,
                        // A TLS-level refusal; a client that hangs up
                        // mid-handshake is not one.
                        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                            seen.refused.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                        Err(_) => return,
                    };
                    if let Ok(mut broker) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut broker).await;
                    }
                });
            }
        });
        TlsFront { port, counts, task }
    }

    pub fn handshakes(&self) -> usize {
        self.counts.handshakes.load(Ordering::Relaxed)
    }

    pub fn refused(&self) -> usize {
        self.counts.refused.load(Ordering::Relaxed)
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}
