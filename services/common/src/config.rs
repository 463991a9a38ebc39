//! Configuration loading shared by every service.
//!
//! One TOML file format serves all services. Values come from the file, then
//! from `FREEPORT_<SECTION>__<KEY>` environment variables, where `__`
//! separates nesting levels (`FREEPORT_PORTAL__LISTEN=0.0.0.0:8443` sets
//! `portal.listen`). Every value lives inside a section, so a variable
//! without `__` (`FREEPORT_LOG`, say) is not configuration and is left alone.
//! The loader takes the environment as a map so tests can pass one in.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::names::{ClusterName, OrgName};

pub const ENV_PREFIX: &str = "FREEPORT_";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config: {0}")]
    Parse(String),
    #[error("invalid config:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

/// A secret from configuration. It never prints: not in logs, not in
/// debug output.
#[derive(Clone, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The secret as the key of the HMAC that replaces hashed fields; `None`
    /// when shorter than [`MIN_HASH_KEY_CHARS`].
    pub fn hash_key(&self) -> Option<Vec<u8>> {
        (self.0.chars().count() >= MIN_HASH_KEY_CHARS).then(|| self.0.as_bytes().to_vec())
    }
}

/// The shortest hash key accepted (`link.hash_key`, `portal.hash_key`).
pub const MIN_HASH_KEY_CHARS: usize = 32;

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A Kafka cluster the hub can reach, by name.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Required: the organization that owns this cluster. Only its members
    /// register streams on it, and only its contracts deliver into it.
    #[serde(default)]
    pub owner: Option<OrgName>,
    /// Comma-separated `host:port` bootstrap servers.
    pub bootstrap: String,
    /// Shown in listings; the embedded mock clusters say what they are here.
    #[serde(default)]
    pub description: String,
    /// Mutual TLS to the brokers: the CA that signs them, and this hub's
    /// client certificate and key. Without it the connection is plaintext.
    #[serde(default)]
    pub tls: Option<crate::tls::TlsFiles>,
}

impl ClusterConfig {
    /// A plaintext cluster with no description and no owner: a connection
    /// for tools and tests that only read or write records.
    pub fn plaintext(bootstrap: impl Into<String>) -> ClusterConfig {
        ClusterConfig {
            owner: None,
            bootstrap: bootstrap.into(),
            description: String::new(),
            tls: None,
        }
    }
}

/// `host:port` with an IP address, as listeners take: the schema of a
/// `SocketAddr` field.
pub fn socket_addr_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "pattern": SOCKET_ADDR_PATTERN,
    })
}

/// [`socket_addr_schema`] for an optional field.
pub fn optional_socket_addr_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": ["string", "null"],
        "pattern": SOCKET_ADDR_PATTERN,
    })
}

/// An IPv4 address or a bracketed IPv6 one, a colon and a port.
const SOCKET_ADDR_PATTERN: &str = r"^(\d{1,3}(\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\]):\d{1,5}$";

/// Every configured cluster, by name.
pub type Clusters = BTreeMap<ClusterName, ClusterConfig>;

/// Reads a TOML file (when given), applies `FREEPORT_` overrides from `env`,
/// and deserializes the result.
pub fn load<T: DeserializeOwned>(
    path: Option<&Path>,
    env: &HashMap<String, String>,
) -> Result<T, ConfigError> {
    let root = load_table(path, env)?;
    T::deserialize(toml::Value::Table(root)).map_err(|e| ConfigError::Parse(e.to_string()))
}

/// The TOML file (when given) with the `FREEPORT_` overrides from `env`
/// applied, before it is read into types.
pub fn load_table(
    path: Option<&Path>,
    env: &HashMap<String, String>,
) -> Result<toml::Table, ConfigError> {
    let mut root = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.display().to_string(),
                source,
            })?;
            text.parse::<toml::Table>()
                .map_err(|e| ConfigError::Parse(format!("{}: {e}", path.display())))?
        }
        None => toml::Table::new(),
    };
    apply_env(&mut root, env)?;
    Ok(root)
}

/// The environment variable that sets the value at `path` (`portal.listen`
/// is `FREEPORT_PORTAL__LISTEN`).
pub fn env_var(path: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        path.replace('.', "__").to_ascii_uppercase()
    )
}

/// Problems found in a configuration, each naming its key.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<String>);

impl Problems {
    /// One problem with the value at `key` (a dotted path).
    pub fn add(&mut self, key: &str, problem: impl std::fmt::Display) {
        self.0.push(format!("{key}: {problem}"));
    }

    /// A file the service reads at start: it must exist and be readable.
    pub fn readable(&mut self, key: &str, path: &Path) -> Option<Vec<u8>> {
        match std::fs::read(path) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                self.add(key, format!("cannot read {}: {e}", path.display()));
                None
            }
        }
    }

    /// A PEM certificate file (a CA, say): readable and holding one.
    pub fn certificate(&mut self, key: &str, path: &Path) -> Option<Vec<u8>> {
        let pem = self.readable(key, path)?;
        if crate::tls::certificate_not_after(&pem).is_none() {
            self.add(key, format!("{} holds no PEM certificate", path.display()));
            return None;
        }
        Some(pem)
    }

    /// A catalog address: `https://host:port`.
    pub fn catalog_url(&mut self, key: &str, url: &str) {
        match url.strip_prefix("https://") {
            None => self.add(
                key,
                format!("{url:?} is not an https:// URL (the catalog speaks mutual TLS only)"),
            ),
            Some(rest) => {
                let authority = rest.trim_end_matches('/');
                if !is_host_port(authority) || authority.contains('/') {
                    self.add(key, format!("{url:?} is not https://host:port"));
                }
            }
        }
    }

    /// A secret used as an HMAC key.
    pub fn hash_key(&mut self, key: &str, secret: Option<&Secret>) {
        if secret.is_some_and(|s| s.hash_key().is_none()) {
            self.add(
                key,
                format!("must be at least {MIN_HASH_KEY_CHARS} characters"),
            );
        }
    }

    /// A number that must be at least `min`.
    pub fn at_least(&mut self, key: &str, value: u64, min: u64) {
        if value < min {
            self.add(key, format!("is {value}; the least allowed is {min}"));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `host:port`: a host, a colon and a port number.
fn is_host_port(text: &str) -> bool {
    text.rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

impl ClusterConfig {
    /// [`ClusterConfig::plaintext`], owned by `owner`.
    pub fn owned_by(owner: OrgName, bootstrap: impl Into<String>) -> ClusterConfig {
        ClusterConfig {
            owner: Some(owner),
            ..ClusterConfig::plaintext(bootstrap)
        }
    }

    /// Whether `org` owns this cluster.
    pub fn is_owned_by(&self, org: &str) -> bool {
        self.owner
            .as_ref()
            .is_some_and(|owner| owner.as_str() == org)
    }

    /// Every service needs to know whose each cluster is.
    pub fn validate_owner(&self, name: &str, problems: &mut Problems) {
        if self.owner.is_none() {
            problems.add(
                &format!("clusters.{name}.owner"),
                "missing: name the organization that owns this cluster",
            );
        }
    }

    /// Every problem with cluster `name`'s settings.
    pub fn validate(&self, name: &str, problems: &mut Problems) {
        let key = format!("clusters.{name}");
        let servers: Vec<&str> = self.bootstrap.split(',').map(str::trim).collect();
        for server in servers {
            if !is_host_port(server) {
                problems.add(
                    &format!("{key}.bootstrap"),
                    format!("{server:?} is not host:port"),
                );
            }
        }
        if let Some(tls) = &self.tls {
            tls.validate(&format!("{key}.tls"), problems);
        }
    }
}

fn apply_env(root: &mut toml::Table, env: &HashMap<String, String>) -> Result<(), ConfigError> {
    let mut keys: Vec<_> = env
        .keys()
        .filter(|k| k.starts_with(ENV_PREFIX) && k[ENV_PREFIX.len()..].contains("__"))
        .collect();
    // Deterministic order, so a conflict is reported the same way every time.
    keys.sort();
    for key in keys {
        let path: Vec<String> = key[ENV_PREFIX.len()..]
            .split("__")
            .map(|part| part.to_ascii_lowercase())
            .collect();
        if path.iter().any(String::is_empty) {
            return Err(ConfigError::Parse(format!(
                "environment variable {key} has an empty path segment"
            )));
        }
        let value = parse_env_value(&env[key]);
        let (last, parents) = path.split_last().expect("path is not empty");
        let mut table = &mut *root;
        for part in parents {
            let entry = table
                .entry(part.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            table = match entry {
                toml::Value::Table(t) => t,
                _ => {
                    return Err(ConfigError::Parse(format!(
                        "environment variable {key}: {part} is not a table"
                    )))
                }
            };
        }
        table.insert(last.clone(), value);
    }
    Ok(())
}

/// `true`, numbers and arrays are read as TOML; anything else is a string.
fn parse_env_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

/// The process environment as a map, for [`load`].
pub fn process_env() -> HashMap<String, String> {
    std::env::vars().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        portal: Portal,
        #[serde(default)]
        clusters: Clusters,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Portal {
        listen: String,
        #[serde(default)]
        dev_mode: bool,
    }

    #[test]
    fn env_overrides_the_file_with_nesting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.toml");
        std::fs::write(
            &path,
            "[portal]\nlisten = \"127.0.0.1:1\"\n[clusters.a]\nbootstrap = \"x:1\"\n",
        )
        .unwrap();
        let env = HashMap::from([
            (
                "FREEPORT_PORTAL__LISTEN".to_string(),
                "0.0.0.0:2".to_string(),
            ),
            ("FREEPORT_PORTAL__DEV_MODE".to_string(), "true".to_string()),
            ("OTHER".to_string(), "ignored".to_string()),
            ("FREEPORT_LOG".to_string(), "not configuration".to_string()),
        ]);
        let cfg: Sample = load(Some(&path), &env).unwrap();
        assert_eq!(cfg.portal.listen, "0.0.0.0:2");
        assert!(cfg.portal.dev_mode);
        assert_eq!(cfg.clusters.len(), 1);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let env = HashMap::from([
            ("FREEPORT_PORTAL__LISTEN".to_string(), "x".to_string()),
            ("FREEPORT_PORTAL__LISTNE".to_string(), "y".to_string()),
        ]);
        let err = load::<Sample>(None, &env).unwrap_err().to_string();
        assert!(err.contains("listne"), "{err}");
    }
}
