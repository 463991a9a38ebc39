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

use crate::names::ClusterName;

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
#[derive(Clone, Deserialize, PartialEq, Eq)]
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
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
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
    /// A plaintext cluster with no description.
    pub fn plaintext(bootstrap: impl Into<String>) -> ClusterConfig {
        ClusterConfig {
            bootstrap: bootstrap.into(),
            description: String::new(),
            tls: None,
        }
    }
}

/// Every configured cluster, by name.
pub type Clusters = BTreeMap<ClusterName, ClusterConfig>;

/// Reads a TOML file (when given), applies `FREEPORT_` overrides from `env`,
/// and deserializes the result.
pub fn load<T: DeserializeOwned>(
    path: Option<&Path>,
    env: &HashMap<String, String>,
) -> Result<T, ConfigError> {
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
    T::deserialize(toml::Value::Table(root)).map_err(|e| ConfigError::Parse(e.to_string()))
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
