//! The HTTPS listener's acceptor: TLS, and the client certificate (when
//! the caller showed one) handed to every request of the connection as a
//! [`PeerCertificate`] extension, from which [`crate::extract::Caller`]
//! takes the caller's organization.

use std::io;
use std::sync::Arc;

use axum_server::accept::{Accept, DefaultAcceptor};
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite};
use tower_http::add_extension::AddExtension;

/// The first certificate the client presented (DER), if any. rustls has
/// checked it against the portal's `client_ca` during the handshake.
#[derive(Debug, Clone, Default)]
pub struct PeerCertificate(pub Option<Arc<Vec<u8>>>);

#[derive(Clone)]
pub struct ClientCertAcceptor {
    tls: RustlsAcceptor<DefaultAcceptor>,
}

impl ClientCertAcceptor {
    pub fn new(config: rustls::ServerConfig) -> ClientCertAcceptor {
        ClientCertAcceptor {
            tls: RustlsAcceptor::new(RustlsConfig::from_config(Arc::new(config))),
        }
    }
}

impl<I, S> Accept<I, S> for ClientCertAcceptor
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Send + 'static,
{
    type Stream = tokio_rustls::server::TlsStream<I>;
    type Service = AddExtension<S, PeerCertificate>;
    type Future = BoxFuture<'static, io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let accepting = self.tls.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = accepting.await?;
            let certificate = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|der| Arc::new(der.to_vec()));
            Ok((
                stream,
                AddExtension::new(service, PeerCertificate(certificate)),
            ))
        })
    }
}
