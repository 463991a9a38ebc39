use freeport_common::config::{Problems, Secret};
use freeport_common::tls::TlsFiles;
use serde::Deserialize;

/// The `[link]` section of the configuration file.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    /// The catalog's gRPC address, `https://host:port`.
    pub catalog_url: String,
    /// This service's certificate, key and the CA the catalog's must be signed by.
    pub tls: TlsFiles,
    /// Key of the HMAC that replaces hashed fields (at least 32 characters).
    /// Contracts that hash fields cannot be served without it. Keep it
    /// stable: a new key changes every hash.
    #[serde(default)]
    pub hash_key: Option<Secret>,
    /// Where to serve the operations endpoints: `/livez`, `/readyz` (the
    /// catalog and every cluster reachable) and Prometheus `/metrics`
    /// (client certificate signed by the hub's CA required), over HTTPS.
    /// None when absent.
    #[serde(default)]
    #[schemars(schema_with = "freeport_common::config::optional_socket_addr_schema")]
    pub ops_listen: Option<std::net::SocketAddr>,
    /// Connection limits of the operations listener.
    #[serde(default)]
    pub ops_connections: freeport_common::http_server::ConnectionLimits,
}

impl LinkConfig {
    /// Every problem with the `[link]` section, found without starting it.
    pub fn validate(&self, problems: &mut Problems) {
        problems.catalog_url("link.catalog_url", &self.catalog_url);
        self.tls.validate("link.tls", problems);
        self.ops_connections
            .validate("link.ops_connections", problems);
        problems.hash_key("link.hash_key", self.hash_key.as_ref());
    }
}
