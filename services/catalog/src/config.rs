use std::net::SocketAddr;

use freeport_common::config::Problems;
use freeport_common::tls::TlsFiles;
use serde::Deserialize;

/// The `[catalog]` section of the configuration file.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    /// Address of the gRPC listener (mutual TLS).
    #[schemars(schema_with = "freeport_common::config::socket_addr_schema")]
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
    #[schemars(schema_with = "freeport_common::config::optional_socket_addr_schema")]
    pub ops_listen: Option<SocketAddr>,
    /// Connection limits of the operations listener.
    #[serde(default)]
    pub ops_connections: freeport_common::http_server::ConnectionLimits,
    /// Seconds a link process holds the contracts it mirrors without
    /// calling in. A link that dies hands its contracts over after this
    /// long; a catalog that restarts hands out nothing new for this long.
    #[serde(default = "default_link_lease_secs")]
    pub link_lease_secs: u64,
}

fn default_link_lease_secs() -> u64 {
    10
}

impl CatalogConfig {
    /// Every problem with the `[catalog]` section, found without starting it.
    pub fn validate(&self, problems: &mut Problems) {
        let store_ok = self.store == "memory://"
            || self
                .store
                .strip_prefix("sled://")
                .is_some_and(|path| !path.is_empty());
        if !store_ok {
            problems.add(
                "catalog.store",
                format!("{:?} is neither sled://PATH nor memory://", self.store),
            );
        }
        self.tls.validate("catalog.tls", problems);
        self.ops_connections
            .validate("catalog.ops_connections", problems);
        if let Some(path) = &self.asyncapi_schema {
            if let Err(e) = crate::asyncapi::AsyncApiValidator::load(path) {
                problems.add("catalog.asyncapi_schema", e);
            }
        }
        if let Err(e) = freeport_common::authz::Authorizer::load(self.policies.as_deref()) {
            problems.add("catalog.policies", e);
        }
        if self.ops_listen == Some(self.listen) {
            problems.add(
                "catalog.ops_listen",
                "is the same address as catalog.listen",
            );
        }
        problems.at_least("catalog.link_lease_secs", self.link_lease_secs, 2);
    }
}
