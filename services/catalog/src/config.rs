use std::net::SocketAddr;

use freeport_common::tls::TlsFiles;
use serde::Deserialize;

/// The `[catalog]` section of the configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    /// Address of the gRPC listener (mutual TLS).
    pub listen: SocketAddr,
    /// Where state is kept: `sled://PATH` or `memory://`.
    pub store: String,
    /// This service's certificate, key and the CA its clients must present.
    pub tls: TlsFiles,
}
