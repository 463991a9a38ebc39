use freeport_common::tls::TlsFiles;
use serde::Deserialize;

/// The `[link]` section of the configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    /// The catalog's gRPC address, `https://host:port`.
    pub catalog_url: String,
    /// This service's certificate, key and the CA the catalog's must be signed by.
    pub tls: TlsFiles,
}
