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
    /// The official AsyncAPI 3.0 JSON Schema (`schemas/3.0.0-without-$id.json`
    /// of the `@asyncapi/specs` npm package). Publishing AsyncAPI documents
    /// needs it; without it, publishing answers "unavailable".
    #[serde(default)]
    pub asyncapi_schema: Option<std::path::PathBuf>,
    /// Cedar policies deciding who may discover streams and decide on
    /// contracts; the copy of `policies/freeport.cedar` built into the
    /// binary when absent.
    #[serde(default)]
    pub policies: Option<std::path::PathBuf>,
    /// Where to serve the operations endpoints: `/livez`, `/readyz` (the
    /// store answers) and Prometheus `/metrics` (client certificate signed
    /// by the hub's CA required), over HTTPS. None when absent.
    #[serde(default)]
    pub ops_listen: Option<SocketAddr>,
}
