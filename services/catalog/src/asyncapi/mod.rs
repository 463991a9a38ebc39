//! Publishing AsyncAPI 3.0 documents: parse, validate, and plan the streams
//! they describe. Pure: the service applies the plan in one commit.
//!
//! A document is checked against the official AsyncAPI 3.0 JSON Schema
//! (loaded from the file the configuration names) and then by our own
//! rules; every problem comes back at once, each with its JSON pointer:
//!
//! - every Kafka channel maps to a topic (its `address`, or the Kafka
//!   binding's `topic`) on one known cluster: the server it names, whose
//!   key (or `x-freeport-cluster`) is a configured cluster;
//! - every channel carries exactly one message whose payload compiles, as
//!   JSON Schema or as Avro (`schemaFormat` of the multi-format object);
//! - only local references (`#/...`) are followed.
//!
//! The stream's name is the channel's key (or `x-freeport-stream`); its
//! classification `x-freeport-classification` (default internal).

use std::collections::BTreeSet;
use std::path::Path;

use freeport_common::names::{ClusterName, StreamName, TopicName};
use serde_json::Value;

use crate::domain::NewStream;
use crate::domain::{Classification, Compatibility, SchemaFormat};

mod generate;

pub use generate::{partner_document, stream_document, Delivery, Portal};

/// The largest document accepted, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// One problem, where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub pointer: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.pointer, self.message)
    }
}

fn problem(pointer: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        pointer: pointer.into(),
        message: message.into(),
    }
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The official AsyncAPI 3.0 JSON Schema, compiled once.
pub struct AsyncApiValidator {
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for AsyncApiValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncApiValidator").finish_non_exhaustive()
    }
}

impl AsyncApiValidator {
    /// Loads the schema (`3.0.0-without-$id.json` of the `@asyncapi/specs`
    /// package).
    pub fn load(path: &Path) -> Result<AsyncApiValidator, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the AsyncAPI schema {}: {e}", path.display()))?;
        let schema: Value = serde_json::from_str(&text)
            .map_err(|e| format!("the AsyncAPI schema {} is not JSON: {e}", path.display()))?;
        if schema.pointer("/properties/asyncapi/const") != Some(&Value::String("3.0.0".into())) {
            return Err(format!(
                "{} is not the AsyncAPI 3.0.0 schema",
                path.display()
            ));
        }
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft7)
            .build(&schema)
            .map_err(|e| format!("the AsyncAPI schema does not compile: {e}"))?;
        Ok(AsyncApiValidator { validator })
    }

    fn problems(&self, document: &Value) -> Vec<Problem> {
        let mut seen = BTreeSet::new();
        let mut problems = Vec::new();
        for error in self.validator.iter_errors(document) {
            for (pointer, message) in explain(&error) {
                let pointer = if pointer.is_empty() {
                    "/".to_string()
                } else {
                    pointer
                };
                if seen.insert((pointer.clone(), message.clone())) {
                    problems.push(problem(pointer, message));
                }
            }
        }
        problems
    }
}

/// The errors behind a validation error. A failed `oneOf`/`anyOf` (the
/// official schema uses them for "a reference or an object") is explained by
/// the branch that got furthest into the document, which is almost always
/// the one the author meant.
fn explain(error: &jsonschema::ValidationError<'_>) -> Vec<(String, String)> {
    use jsonschema::error::ValidationErrorKind;
    let here = error.instance_path.to_string();
    let branches = match &error.kind {
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            context
        }
        _ => return vec![(here, error.to_string())],
    };
    let depth = |branch: &Vec<jsonschema::ValidationError<'static>>| {
        branch
            .iter()
            .map(|e| e.instance_path.to_string().len())
            .max()
            .unwrap_or(0)
    };
    match branches.iter().max_by_key(|b| depth(b)) {
        Some(best) if !best.is_empty() && depth(best) > here.len() => {
            best.iter().flat_map(explain).collect()
        }
        _ => vec![(here, error.to_string())],
    }
}

/// Parses a document as JSON or YAML.
pub fn parse(text: &str) -> Result<Value, Problem> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(problem(
            "/",
            format!(
                "the document is {} bytes; the limit is {MAX_DOCUMENT_BYTES}",
                text.len()
            ),
        ));
    }
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        serde_json::from_str(text).map_err(|e| problem("/", format!("malformed JSON: {e}")))
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| problem("/", format!("malformed YAML: {e}")))
    }
}

/// A stream a document describes, and where.
#[derive(Debug, Clone)]
pub struct PlannedStream {
    /// Where the channel describing it is in the document.
    pub pointer: String,
    pub new: NewStream,
}

/// Follows a local reference (`#/...`) once; other references are problems.
fn resolve<'a>(
    document: &'a Value,
    node: &'a Value,
    at: &str,
    problems: &mut Vec<Problem>,
) -> Option<&'a Value> {
    let Some(reference) = node.get("$ref") else {
        return Some(node);
    };
    let Some(pointer) = reference.as_str().and_then(|r| r.strip_prefix('#')) else {
        problems.push(problem(
            format!("{at}/$ref"),
            "only local references (#/...) are supported",
        ));
        return None;
    };
    match document.pointer(pointer) {
        Some(target) if target.get("$ref").is_none() => Some(target),
        Some(target) => resolve(document, target, at, problems),
        None => {
            problems.push(problem(
                format!("{at}/$ref"),
                format!("{reference} points at nothing"),
            ));
            None
        }
    }
}

fn text(value: Option<&Value>) -> String {
    value
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Validates a document and lists the streams it describes.
pub fn plan(
    document: &Value,
    validator: &AsyncApiValidator,
    is_cluster: impl Fn(&ClusterName) -> bool,
) -> Result<Vec<PlannedStream>, Vec<Problem>> {
    // Our rules read the document defensively, so they run even when the
    // official schema already found problems: everything comes back at once.
    let mut problems = validator.problems(document);
    let servers = document
        .get("servers")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let kafka_servers: Vec<&String> = servers
        .iter()
        .filter(|(_, s)| {
            s.get("protocol")
                .and_then(Value::as_str)
                .is_some_and(|p| p.starts_with("kafka"))
        })
        .map(|(k, _)| k)
        .collect();
    let cluster_of = |key: &str, problems: &mut Vec<Problem>| -> Option<ClusterName> {
        let server = servers.get(key)?;
        let at = format!("/servers/{}", escape(key));
        let name = server
            .get("x-freeport-cluster")
            .and_then(Value::as_str)
            .unwrap_or(key);
        match ClusterName::parse(name) {
            Ok(cluster) if is_cluster(&cluster) => Some(cluster),
            _ => {
                problems.push(problem(
                    at,
                    format!("server {key:?} is not a cluster this hub knows (name it after one, or set x-freeport-cluster)"),
                ));
                None
            }
        }
    };

    let mut planned = Vec::new();
    let channels = document
        .get("channels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if channels.is_empty() {
        problems.push(problem("/channels", "the document describes no channel"));
    }
    let info = document.get("info").cloned().unwrap_or(Value::Null);
    for (key, channel) in &channels {
        let at = format!("/channels/{}", escape(key));
        let Some(channel) = resolve(document, channel, &at, &mut problems) else {
            continue;
        };
        let name_text = channel
            .get("x-freeport-stream")
            .and_then(Value::as_str)
            .unwrap_or(key);
        let name = match StreamName::parse(name_text) {
            Ok(name) => Some(name),
            Err(e) => {
                problems.push(problem(
                    at.clone(),
                    format!("{e} (name the channel after the stream, or set x-freeport-stream)"),
                ));
                None
            }
        };
        let topic_text = channel
            .pointer("/bindings/kafka/topic")
            .and_then(Value::as_str)
            .or_else(|| channel.get("address").and_then(Value::as_str));
        let topic = match topic_text.map(TopicName::parse) {
            Some(Ok(topic)) => Some(topic),
            Some(Err(e)) => {
                problems.push(problem(format!("{at}/address"), e.to_string()));
                None
            }
            None => {
                problems.push(problem(
                    format!("{at}/address"),
                    "a Kafka channel needs an address: its topic",
                ));
                None
            }
        };
        // The cluster: the one server the channel names, or the document's
        // only Kafka server.
        let server_keys: Vec<String> = match channel.get("servers").and_then(Value::as_array) {
            Some(refs) => refs
                .iter()
                .filter_map(|r| r.get("$ref").and_then(Value::as_str))
                .filter_map(|r| r.strip_prefix("#/servers/"))
                .map(|k| k.replace("~1", "/").replace("~0", "~"))
                .collect(),
            None => kafka_servers.iter().map(|k| (*k).clone()).collect(),
        };
        let cluster = match server_keys.as_slice() {
            [one] => cluster_of(one, &mut problems),
            [] => {
                problems.push(problem(
                    format!("{at}/servers"),
                    "no Kafka server for this channel",
                ));
                None
            }
            _ => {
                problems.push(problem(
                    format!("{at}/servers"),
                    "a channel must name exactly one Kafka server (cluster)",
                ));
                None
            }
        };
        let messages = channel
            .get("messages")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let (schema_format, schema) = match messages.iter().collect::<Vec<_>>().as_slice() {
            [(message_key, message)] => {
                let message_at = format!("{at}/messages/{}", escape(message_key));
                match resolve(document, message, &message_at, &mut problems) {
                    None => (SchemaFormat::JsonSchema, None),
                    Some(message) => payload(document, message, &message_at, &mut problems),
                }
            }
            _ => {
                problems.push(problem(
                    format!("{at}/messages"),
                    "a channel must carry exactly one message",
                ));
                (SchemaFormat::JsonSchema, None)
            }
        };
        let classification = match channel
            .get("x-freeport-classification")
            .and_then(Value::as_str)
        {
            None => Classification::default(),
            Some(text) => Classification::parse(text).unwrap_or_else(|| {
                problems.push(problem(
                    format!("{at}/x-freeport-classification"),
                    format!("{text:?} is not public, partner, internal or restricted"),
                ));
                Classification::default()
            }),
        };
        let tags = channel
            .get("tags")
            .or_else(|| info.get("tags"))
            .and_then(Value::as_array)
            .map(|t| {
                t.iter()
                    .filter_map(|t| t.get("name").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let partitions = channel
            .pointer("/bindings/kafka/partitions")
            .and_then(Value::as_u64)
            .and_then(|p| u32::try_from(p).ok());
        if let (Some(name), Some(cluster), Some(topic), Some(schema)) =
            (name, cluster, topic, schema)
        {
            planned.push(PlannedStream {
                pointer: at.clone(),
                new: NewStream {
                    title: channel
                        .get("title")
                        .map_or_else(|| text(info.get("title")), |t| text(Some(t))),
                    description: channel
                        .get("description")
                        .map_or_else(|| text(info.get("description")), |d| text(Some(d))),
                    name,
                    cluster,
                    topic,
                    tags,
                    value_schema: schema,
                    classification,
                    personal_data_fields: vec![],
                    partitions: partitions.unwrap_or(1),
                    retention_ms: None,
                    schema_format,
                    compatibility: Compatibility::default(),
                },
            });
        }
    }
    let mut names = BTreeSet::new();
    for stream in &planned {
        if !names.insert(stream.new.name.clone()) {
            problems.push(problem(
                "/channels",
                format!("stream {} is described twice", stream.new.name),
            ));
        }
    }
    if problems.is_empty() {
        Ok(planned)
    } else {
        Err(problems)
    }
}

/// The message's payload schema and its format, checked.
fn payload(
    document: &Value,
    message: &Value,
    at: &str,
    problems: &mut Vec<Problem>,
) -> (SchemaFormat, Option<Value>) {
    let Some(raw) = message.get("payload") else {
        problems.push(problem(
            format!("{at}/payload"),
            "the message needs a payload schema",
        ));
        return (SchemaFormat::JsonSchema, None);
    };
    let payload_at = format!("{at}/payload");
    let Some(raw) = resolve(document, raw, &payload_at, problems) else {
        return (SchemaFormat::JsonSchema, None);
    };
    let (format, schema, schema_at) = match raw.get("schemaFormat").and_then(Value::as_str) {
        Some(format) if format.starts_with("application/vnd.apache.avro") => (
            SchemaFormat::Avro,
            raw.get("schema").cloned().unwrap_or(Value::Null),
            format!("{payload_at}/schema"),
        ),
        Some(format)
            if format.starts_with("application/schema+json")
                || format.starts_with("application/vnd.aai.asyncapi") =>
        {
            (
                SchemaFormat::JsonSchema,
                raw.get("schema").cloned().unwrap_or(Value::Null),
                format!("{payload_at}/schema"),
            )
        }
        Some(format) => {
            problems.push(problem(
                format!("{payload_at}/schemaFormat"),
                format!("{format:?} is not supported (JSON Schema or Avro)"),
            ));
            return (SchemaFormat::JsonSchema, None);
        }
        None => (SchemaFormat::JsonSchema, raw.clone(), payload_at),
    };
    match freeport_common::schema::check_schema(
        format,
        freeport_common::schema::Source::alone(&schema),
    ) {
        Ok(()) => (format, Some(schema)),
        Err(errors) => {
            for e in errors {
                let (pointer, message) = e.split_once(": ").unwrap_or(("", e.as_str()));
                let pointer = if pointer == "/" { "" } else { pointer };
                problems.push(problem(
                    format!("{schema_at}{pointer}"),
                    message.to_string(),
                ));
            }
            (format, None)
        }
    }
}
