use std::net::SocketAddr;

use freeport_common::config::{Problems, Secret};
use freeport_common::tls::TlsFiles;
use serde::Deserialize;

/// The `[portal]` section of the configuration file.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PortalConfig {
    /// Address of the HTTP listener.
    #[schemars(schema_with = "freeport_common::config::socket_addr_schema")]
    pub listen: SocketAddr,
    /// The catalog's gRPC address, `https://host:port`.
    pub catalog_url: String,
    /// This service's certificate and key (for HTTPS and for the catalog)
    /// and the CA the catalog's certificate must be signed by.
    pub tls: TlsFiles,
    /// PEM file of the CA(s) whose client certificates identify
    /// organizations (a certificate names its organization with the URI
    /// `urn:freeport:org:<name>`; `freeport certs org` issues them). Without
    /// it the portal asks for no client certificate: API keys only.
    #[serde(default)]
    pub client_ca: Option<std::path::PathBuf>,
    /// PEM (or DER) file of certificate revocation lists from `client_ca`:
    /// a client certificate it lists is refused (40102), and its open feeds
    /// and consumer instances close. Read again within about a second of
    /// changing; a file that no longer parses is logged and the last good
    /// list kept. `freeport certs revoke` writes one.
    #[serde(default)]
    pub client_crl: Option<std::path::PathBuf>,
    /// Serve plain HTTP instead of HTTPS. Development only: `freeport up`
    /// sets it; anything else should not.
    #[serde(default)]
    pub dev_mode: bool,
    /// Key of the HMAC that replaces hashed fields in records pushed to
    /// partners (at least 32 characters): the link's `hash_key`, so the
    /// same value hashes the same way mirrored or pushed. Without it,
    /// contracts that hash fields cannot be read here.
    #[serde(default)]
    pub hash_key: Option<Secret>,
    /// Largest request body accepted, in bytes.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Seconds a REST Proxy consumer instance may go unused before it is
    /// closed and its partitions go to the rest of its group.
    #[serde(default = "default_consumer_idle_secs")]
    pub consumer_idle_secs: u64,
    /// Data-plane requests a second each contract may make (bursts of
    /// twice that); beyond, 429 with `Retry-After`.
    #[serde(default = "default_contract_requests_per_second")]
    pub contract_requests_per_second: u32,
    /// Longest a request may take to be answered (streams, once started,
    /// are not limited); beyond, 504.
    #[serde(default = "default_request_timeout_secs")]
    pub request_timeout_secs: u64,
    /// Cedar policies deciding who may read a stream's records; the copy of
    /// `policies/freeport.cedar` built into the binary when absent.
    #[serde(default)]
    pub policies: Option<std::path::PathBuf>,
    /// Where to serve the operations endpoints: `/livez`, `/readyz` (the
    /// catalog and every cluster reachable) and Prometheus `/metrics`
    /// (client certificate signed by the hub's CA required), over HTTPS
    /// (plain HTTP in development mode). None when absent.
    #[serde(default)]
    #[schemars(schema_with = "freeport_common::config::optional_socket_addr_schema")]
    pub ops_listen: Option<SocketAddr>,
    /// Connection limits of the operations listener.
    #[serde(default)]
    pub ops_connections: freeport_common::http_server::ConnectionLimits,
    /// Seconds the data plane (produce, reads, push feeds) goes on deciding
    /// from the portal's last view of the catalog once it has lost the
    /// catalog; beyond, those calls are refused (503) until it is back. A
    /// revocation made just before the catalog went away takes effect here
    /// at the latest this long after.
    #[serde(default = "default_view_max_staleness_secs")]
    pub view_max_staleness_secs: u64,
    /// Connection limits of the API listener: how long a client has to
    /// send a request's headers, how long an idle connection stays open,
    /// how many connections are open at once.
    #[serde(default)]
    pub connections: freeport_common::http_server::ConnectionLimits,
}

impl PortalConfig {
    /// Every problem with the `[portal]` section, found without starting it.
    pub fn validate(&self, problems: &mut Problems) {
        problems.catalog_url("portal.catalog_url", &self.catalog_url);
        self.tls.validate("portal.tls", problems);
        if let Some(path) = &self.client_ca {
            problems.certificate("portal.client_ca", path);
        }
        if let Some(path) = &self.client_crl {
            if self.client_ca.is_none() {
                problems.add(
                    "portal.client_crl",
                    "needs portal.client_ca: it revokes client certificates that CA signed",
                );
            }
            if let Some(bytes) = problems.readable("portal.client_crl", path) {
                if let Err(e) = freeport_common::tls::RevocationList::parse(&bytes) {
                    problems.add("portal.client_crl", format!("{}: {e}", path.display()));
                }
            }
        }
        problems.hash_key("portal.hash_key", self.hash_key.as_ref());
        self.connections.validate("portal.connections", problems);
        self.ops_connections
            .validate("portal.ops_connections", problems);
        problems.at_least(
            "portal.max_body_bytes",
            u64::try_from(self.max_body_bytes).unwrap_or(u64::MAX),
            1024,
        );
        problems.at_least("portal.consumer_idle_secs", self.consumer_idle_secs, 1);
        problems.at_least(
            "portal.contract_requests_per_second",
            u64::from(self.contract_requests_per_second),
            1,
        );
        problems.at_least("portal.request_timeout_secs", self.request_timeout_secs, 1);
        problems.at_least(
            "portal.view_max_staleness_secs",
            self.view_max_staleness_secs,
            1,
        );
        if let Err(e) = freeport_common::authz::Authorizer::load(self.policies.as_deref()) {
            problems.add("portal.policies", e);
        }
        if self.ops_listen == Some(self.listen) {
            problems.add("portal.ops_listen", "is the same address as portal.listen");
        }
    }
}

fn default_contract_requests_per_second() -> u32 {
    50
}

fn default_request_timeout_secs() -> u64 {
    30
}

fn default_consumer_idle_secs() -> u64 {
    300
}

fn default_view_max_staleness_secs() -> u64 {
    300
}

fn default_max_body_bytes() -> usize {
    1024 * 1024
}
