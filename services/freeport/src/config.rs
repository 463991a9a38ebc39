//! The configuration file: one TOML format for every service.
//!
//! Each process reads `[clusters]` and its own section; `FREEPORT_`
//! environment variables override any value (`__` between levels). Loading
//! reports every problem at once, in three passes: the file's shape
//! against the JSON Schema derived from the config types (unknown keys,
//! missing keys, wrong types, malformed addresses), then the values read
//! into those types, then what only a look at the world can tell (files
//! that cannot be read, certificates that do not fit their keys or have
//! expired, policies that do not parse, a link and a portal hashing with
//! different keys). The same schema generates docs/configuration.md.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use freeport_common::config::{self, Clusters, ConfigError, Problems};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

/// Which sections' files, certificates and values are checked against the
/// world: all of them (`freeport config check`), or one service's own at its
/// start, since a shared file names files other hosts hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    All,
    Catalog,
    Link,
    Portal,
}

/// The configuration file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The Kafka clusters the hub reaches, by the name streams and contracts use.
    #[serde(default)]
    pub clusters: Clusters,
    pub catalog: Option<freeport_catalog::CatalogConfig>,
    pub link: Option<freeport_link::LinkConfig>,
    pub portal: Option<freeport_portal::PortalConfig>,
    /// Where every service sends its spans (OpenTelemetry, OTLP/HTTP). No
    /// span is recorded without it.
    pub telemetry: Option<freeport_common::telemetry::TelemetryConfig>,
}

impl FileConfig {
    /// Reads `path` (when given) with the overrides in `env`; every problem
    /// within `scope` at once when there are any.
    pub fn load(
        path: Option<&Path>,
        env: &HashMap<String, String>,
        scope: Scope,
    ) -> Result<Self, ConfigError> {
        let table = config::load_table(path, env)?;
        let instance = serde_json::to_value(&table)
            .map_err(|e| ConfigError::Parse(format!("cannot read the configuration: {e}")))?;
        let mut problems = shape_problems(&instance, env);
        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems.0));
        }
        let config = FileConfig::deserialize(toml::Value::Table(table))
            .map_err(|e| ConfigError::Invalid(vec![e.message().to_string()]))?;
        config.validate(scope, &mut problems);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(problems.0))
        }
    }

    /// Every problem a look at the world finds within `scope`.
    fn validate(&self, scope: Scope, problems: &mut Problems) {
        for (name, cluster) in &self.clusters {
            cluster.validate_owner(name.as_str(), problems);
        }
        // The catalog never connects to a cluster; the others do.
        if scope != Scope::Catalog {
            for (name, cluster) in &self.clusters {
                cluster.validate(name.as_str(), problems);
            }
        }
        if let Some(telemetry) = &self.telemetry {
            telemetry.validate(problems);
        }
        if let (Some(catalog), Scope::All | Scope::Catalog) = (&self.catalog, scope) {
            catalog.validate(problems);
        }
        if let (Some(link), Scope::All | Scope::Link) = (&self.link, scope) {
            link.validate(problems);
        }
        if let (Some(portal), Scope::All | Scope::Portal) = (&self.portal, scope) {
            portal.validate(problems);
        }
        if let (Some(link), Some(portal), Scope::All) = (&self.link, &self.portal, scope) {
            if link.hash_key.is_some()
                && portal.hash_key.is_some()
                && link.hash_key != portal.hash_key
            {
                problems.add(
                    "portal.hash_key",
                    "differs from link.hash_key: a field hashed for a partner would read differently mirrored and pushed",
                );
            }
        }
    }

    /// The sections present, for a summary.
    pub fn sections(&self) -> Vec<&'static str> {
        [
            ("catalog", self.catalog.is_some()),
            ("link", self.link.is_some()),
            ("portal", self.portal.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, present)| present.then_some(name))
        .collect()
    }
}

/// The JSON Schema of the file, as the types declare it. A TOML file holds
/// no nulls, so an optional value is simply its type.
pub fn schema() -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(FileConfig)).unwrap_or_default();
    drop_nulls(&mut schema);
    schema
}

/// `anyOf: [X, {type: null}]` becomes X; `type: [T, "null"]` becomes T.
fn drop_nulls(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Array(options)) = map.get("anyOf") {
                let kept: Vec<Value> = options
                    .iter()
                    .filter(|o| o.get("type") != Some(&Value::String("null".into())))
                    .cloned()
                    .collect();
                if kept.len() == 1 {
                    map.remove("anyOf");
                    if let Some(Value::Object(only)) = kept.into_iter().next() {
                        map.extend(only);
                    }
                }
            }
            if let Some(Value::Array(types)) = map.get("type") {
                let kept: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
                if kept.len() == 1 {
                    map.insert("type".into(), kept[0].clone());
                }
            }
            if map.get("default") == Some(&Value::Null) {
                map.remove("default");
            }
            map.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// Problems with the file's shape, each at its dotted key, naming the
/// environment variable when one set the value.
fn shape_problems(instance: &Value, env: &HashMap<String, String>) -> Problems {
    let mut problems = Problems::default();
    let validator = match jsonschema::validator_for(&schema()) {
        Ok(validator) => validator,
        Err(e) => {
            problems.add("(schema)", e);
            return problems;
        }
    };
    for error in validator.iter_errors(instance) {
        let pointer = error.instance_path.to_string();
        let key = pointer.trim_start_matches('/').replace('/', ".");
        let key = if key.is_empty() {
            "(top level)".to_string()
        } else {
            key
        };
        let message = describe(&error);
        let var = config::env_var(&key);
        if env.contains_key(&var) {
            problems.add(&key, format!("{message} (set by {var})"));
        } else {
            problems.add(&key, message);
        }
    }
    problems
}

/// Whether `pattern` is the one of `ip:port` fields
/// (`config::socket_addr_schema`), as written in the schema or as jsonschema
/// reports it (`\d` rewritten to `[0-9]`): only it bounds a run to 1-5.
fn is_address_pattern(pattern: &str) -> bool {
    pattern.contains("{1,5}")
}

fn describe(error: &jsonschema::ValidationError<'_>) -> String {
    use jsonschema::error::ValidationErrorKind as Kind;
    match &error.kind {
        Kind::AdditionalProperties { unexpected } if error.instance_path.to_string() == "/clusters" => format!(
            "invalid cluster name(s) {}: 1 to 63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
            unexpected.join(", ")
        ),
        Kind::AdditionalProperties { unexpected } => {
            format!("unknown key(s) {}", unexpected.join(", "))
        }
        Kind::Required { property } => format!("missing key {property}"),
        Kind::Pattern { pattern } if is_address_pattern(pattern) => format!(
            "{} is not an IP address and port such as 0.0.0.0:8443",
            error.instance
        ),
        _ => error.to_string(),
    }
}

/// docs/configuration.md.
pub fn reference() -> String {
    let schema = schema();
    let defs = schema.get("$defs").cloned().unwrap_or(Value::Null);
    let resolve = |node: &Value| -> Value {
        match node.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let name = reference.rsplit('/').next().unwrap_or_default();
                defs.get(name).cloned().unwrap_or(Value::Null)
            }
            None => node.clone(),
        }
    };
    let mut out = String::from(
        "# Configuration reference\n\n\
         <!-- Generated from the code by `freeport config docs`; a test fails when this copy is stale. -->\n\n\
         One TOML file configures every service: each process reads `[clusters]` and its own\n\
         section (`freeport catalog|link|portal --config FILE`). Any value can be set or\n\
         overridden by an environment variable: `FREEPORT_`, then the key's path in capitals\n\
         with `__` between levels (`portal.listen` is `FREEPORT_PORTAL__LISTEN`,\n\
         `clusters.acme.bootstrap` is `FREEPORT_CLUSTERS__ACME__BOOTSTRAP`). Numbers, booleans\n\
         and arrays in a variable are read as TOML; anything else is a string.\n\n\
         `freeport config check FILE` reports every problem at once (unknown or missing keys,\n\
         wrong types, unreadable files, certificates that do not fit their keys or have expired,\n\
         policies that do not parse) and exits non-zero; each service does the same at start.\n\
         A commented example: [deploy/freeport.example.toml](../deploy/freeport.example.toml).\n",
    );
    let properties = schema.get("properties").cloned().unwrap_or(Value::Null);
    let clusters = properties
        .get("clusters")
        .and_then(|c| c.get("patternProperties"))
        .and_then(Value::as_object)
        .and_then(|patterns| patterns.values().next())
        .map(&resolve)
        .unwrap_or(Value::Null);
    section(&mut out, "clusters.NAME", &clusters, &resolve);
    // Every other top-level key is a section: a new one is documented
    // without being listed here.
    for (name, node) in properties.as_object().into_iter().flatten() {
        if name != "clusters" {
            section(&mut out, name, &resolve(node), &resolve);
        }
    }
    out
}

fn section(out: &mut String, name: &str, node: &Value, resolve: &dyn Fn(&Value) -> Value) {
    let _ = write!(out, "\n## `[{name}]`\n\n");
    if let Some(description) = node.get("description").and_then(Value::as_str) {
        let _ = writeln!(out, "{}\n", one_line(description));
    }
    out.push_str("| key | type | default | description |\n|---|---|---|---|\n");
    rows(out, name, node, resolve);
}

fn rows(out: &mut String, prefix: &str, node: &Value, resolve: &dyn Fn(&Value) -> Value) {
    let required: Vec<&str> = node
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = node.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (key, property) in properties {
        let path = format!("{prefix}.{key}");
        let resolved = resolve(property);
        let description = property
            .get("description")
            .or_else(|| resolved.get("description"))
            .and_then(Value::as_str)
            .map(one_line)
            .unwrap_or_default();
        let default = match property.get("default") {
            Some(value) => format!("`{value}`"),
            None if required.contains(&key.as_str()) => "required".to_string(),
            None => "none".to_string(),
        };
        let _ = writeln!(
            out,
            "| `{path}` | {} | {default} | {description} |",
            type_name(&resolved)
        );
        if resolved.get("properties").is_some() {
            rows(out, &path, &resolved, resolve);
        }
    }
}

fn type_name(node: &Value) -> String {
    if node
        .get("pattern")
        .and_then(Value::as_str)
        .is_some_and(is_address_pattern)
    {
        return "address (`ip:port`)".to_string();
    }
    match node.get("type").and_then(Value::as_str) {
        Some("object") => "table".to_string(),
        Some(other) => other.to_string(),
        None => "value".to_string(),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn repository() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    #[test]
    fn the_reference_in_docs_is_generated_from_the_code() {
        let path = repository().join("docs/configuration.md");
        let generated = reference();
        if std::env::var_os("UPDATE_CONFIG_DOCS").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/configuration.md is stale: run `UPDATE_CONFIG_DOCS=1 cargo test -p freeport config` (or `freeport config docs > docs/configuration.md`)"
        );
        // Every key of every section is documented.
        for key in [
            "`clusters.NAME.bootstrap`",
            "`clusters.NAME.tls.cert`",
            "`catalog.ops_listen`",
            "`link.hash_key`",
            "`telemetry.endpoint`",
            "`telemetry.sample_ratio`",
            "`portal.request_timeout_secs`",
        ] {
            assert!(generated.contains(key), "{key} is documented");
        }
        assert!(generated.contains("| `portal.max_body_bytes` | integer | `1048576` |"));
    }

    /// Loads `path` with `env`, expecting exactly `expected` problems
    /// (each a part of one problem's text).
    fn assert_problems(path: &Path, env: &HashMap<String, String>, expected: &[&str]) {
        let Err(ConfigError::Invalid(problems)) = FileConfig::load(Some(path), env, Scope::All)
        else {
            panic!("the file is invalid");
        };
        let text = problems.join("\n");
        for expected in expected {
            assert!(text.contains(expected), "{expected:?} in:\n{text}");
        }
        assert_eq!(problems.len(), expected.len(), "{text}");
    }

    #[test]
    fn every_shape_problem_is_reported_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.toml");
        std::fs::write(
            &path,
            "[clusters.a]\nbootstrap = \"x:1\"\ncolour = \"red\"\n[clusters.Bad]\nbootstrap = \"x:1\"\n\
             [portal]\nlisten = \"localhost\"\nmax_body_bytes = \"big\"\n\
             [link]\ncatalog_url = \"https://c:1\"\ntls = { ca = \"a\", cert = \"b\", key = \"c\" }\n",
        )
        .unwrap();
        let env = HashMap::from([(
            "FREEPORT_LINK__OPS_LISTEN".to_string(),
            "nowhere".to_string(),
        )]);
        assert_problems(
            &path,
            &env,
            &[
            "clusters.a: unknown key(s) colour",
            "clusters: invalid cluster name(s) Bad",
            "portal: missing key \"catalog_url\"",
            "portal: missing key \"tls\"",
            "portal.listen: \"localhost\" is not an IP address and port",
            "portal.max_body_bytes: ",
            "link.ops_listen: \"nowhere\" is not an IP address and port such as 0.0.0.0:8443 (set by FREEPORT_LINK__OPS_LISTEN)",
        ],
        );
    }

    #[test]
    fn every_problem_with_the_world_is_reported_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let pki = freeport_common::tls::DevPki::ensure(&dir.path().join("certs")).unwrap();
        let portal = pki.files_for("portal");
        let link = pki.files_for("link");
        let path = dir.path().join("f.toml");
        std::fs::write(
            &path,
            format!(
                "[clusters.a]\nbootstrap = \"x:1,y\"\n\
                 [link]\ncatalog_url = \"http://c:1\"\nhash_key = \"short\"\n\
                 tls = {{ ca = {:?}, cert = {:?}, key = {:?} }}\n\
                 [portal]\nlisten = \"127.0.0.1:1\"\ncatalog_url = \"https://c:1\"\nmax_body_bytes = 10\n\
                 hash_key = \"another-key-of-at-least-thirty-two-characters\"\n\
                 tls = {{ ca = {:?}, cert = {:?}, key = \"/nonexistent/portal.key\" }}\n",
                link.ca, link.cert, portal.key, portal.ca, portal.cert,
            ),
        )
        .unwrap();
        assert_problems(
            &path,
            &HashMap::new(),
            &[
                "clusters.a.owner: missing: name the organization that owns this cluster",
                "clusters.a.bootstrap: \"y\" is not host:port",
                "link.catalog_url: \"http://c:1\" is not an https:// URL",
                "link.hash_key: must be at least 32 characters",
                "link.tls: the certificate and key do not make an identity",
                "portal.tls.key: cannot read /nonexistent/portal.key",
                "portal.max_body_bytes: is 10; the least allowed is 1024",
                "portal.hash_key: differs from link.hash_key",
            ],
        );
    }

    #[test]
    fn the_example_configuration_is_valid_in_shape() {
        let path = repository().join("deploy/freeport.example.toml");
        let table = config::load_table(Some(&path), &HashMap::new()).unwrap();
        let instance = serde_json::to_value(&table).unwrap();
        let problems = shape_problems(&instance, &HashMap::new());
        assert!(problems.is_empty(), "{problems:?}");
        let config = FileConfig::deserialize(toml::Value::Table(table)).unwrap();
        assert_eq!(config.sections(), ["catalog", "link", "portal"]);
        assert_eq!(config.clusters.len(), 2);
    }
}
