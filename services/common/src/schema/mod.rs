//! Schema versions and their compatibility, free of I/O.
//!
//! A stream's value schema evolves in versions. Each stream has a
//! compatibility mode, checked when a new version is registered, with the
//! usual meaning (as in Kafka schema registries):
//!
//! - `Backward`: consumers using the new schema can read data written with
//!   the previous one;
//! - `Forward`: consumers still on the previous schema can read data written
//!   with the new one;
//! - `Full`: both; `None`: no check.
//!
//! Each of the first three checks the new version against the latest; its
//! `_TRANSITIVE` form checks it against every earlier version, as a
//! consumer that may meet data of any age needs.
//!
//! Every incompatibility is reported with the place it occurs and what broke.

pub(crate) mod avro;
pub mod avro_binary;
pub mod codec;
mod json;
pub mod protobuf;
pub mod reshape;
pub mod wire;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use avro::AvroSchema;
pub use protobuf::ProtoSchema;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaFormat {
    #[default]
    JsonSchema,
    Avro,
    /// The text of one `.proto` file (a JSON string).
    Protobuf,
}

impl SchemaFormat {
    pub fn parse(text: &str) -> Option<SchemaFormat> {
        match text {
            "json_schema" | "json" => Some(SchemaFormat::JsonSchema),
            "avro" => Some(SchemaFormat::Avro),
            "protobuf" => Some(SchemaFormat::Protobuf),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SchemaFormat::JsonSchema => "json_schema",
            SchemaFormat::Avro => "avro",
            SchemaFormat::Protobuf => "protobuf",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    #[default]
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
    None,
}

impl Compatibility {
    pub const ALL: [Compatibility; 7] = [
        Compatibility::Backward,
        Compatibility::BackwardTransitive,
        Compatibility::Forward,
        Compatibility::ForwardTransitive,
        Compatibility::Full,
        Compatibility::FullTransitive,
        Compatibility::None,
    ];

    pub fn parse(text: &str) -> Option<Compatibility> {
        let text = text.to_ascii_uppercase();
        Compatibility::ALL
            .into_iter()
            .find(|mode| mode.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Compatibility::Backward => "BACKWARD",
            Compatibility::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Compatibility::Forward => "FORWARD",
            Compatibility::ForwardTransitive => "FORWARD_TRANSITIVE",
            Compatibility::Full => "FULL",
            Compatibility::FullTransitive => "FULL_TRANSITIVE",
            Compatibility::None => "NONE",
        }
    }

    /// Whether a new version is checked against every earlier one, not
    /// only the latest.
    pub fn transitive(self) -> bool {
        matches!(
            self,
            Compatibility::BackwardTransitive
                | Compatibility::ForwardTransitive
                | Compatibility::FullTransitive
        )
    }

    /// (new reads old, old reads new): the directions checked.
    fn directions(self) -> (bool, bool) {
        match self {
            Compatibility::Backward | Compatibility::BackwardTransitive => (true, false),
            Compatibility::Forward | Compatibility::ForwardTransitive => (false, true),
            Compatibility::Full | Compatibility::FullTransitive => (true, true),
            Compatibility::None => (false, false),
        }
    }
}

/// Which part of a record a schema describes: its value, or its key (the
/// `<topic>-value` and `<topic>-key` subjects of a schema registry).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum RecordPart {
    #[default]
    Value,
    Key,
}

impl RecordPart {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordPart::Value => "value",
            RecordPart::Key => "key",
        }
    }
}

/// A schema's reference to a version of another subject (Confluent's
/// schema references): the name the schema uses for it (an Avro full
/// name, a JSON Schema `$ref`, a `.proto` import path) and the stream,
/// part and version it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reference {
    pub name: String,
    pub stream: String,
    pub part: RecordPart,
    pub version: u32,
}

/// A schema a version depends on, directly or through another, with its
/// text: a version reads without looking anything up, and what it
/// depends on never changes (a referenced version cannot be deleted).
/// A version's dependencies come before what depends on them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    #[serde(flatten)]
    pub reference: Reference,
    pub schema: Value,
}

/// What `references` resolve to: each referenced version after what it
/// depends on in turn, each version once. `find` gives a referenced
/// version's schema and its own dependencies, or why it cannot.
pub fn resolve<E>(
    references: &[Reference],
    mut find: impl FnMut(&Reference) -> Result<(Value, Vec<Dependency>), E>,
) -> Result<Vec<Dependency>, E> {
    let key = |r: &Reference| (r.stream.clone(), r.part, r.version);
    let mut resolved: Vec<Dependency> = Vec::new();
    for reference in references {
        let (schema, inner) = find(reference)?;
        for dependency in inner.into_iter().chain([Dependency {
            reference: reference.clone(),
            schema,
        }]) {
            if !resolved
                .iter()
                .any(|d| key(&d.reference) == key(&dependency.reference))
            {
                resolved.push(dependency);
            }
        }
    }
    Ok(resolved)
}

/// A schema with what it depends on: what parsing and checking take.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub schema: &'a Value,
    pub dependencies: &'a [Dependency],
}

impl<'a> Source<'a> {
    /// A schema that refers to nothing.
    pub fn alone(schema: &'a Value) -> Source<'a> {
        Source {
            schema,
            dependencies: &[],
        }
    }
}

/// One registered version of a stream's value or key schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaVersion {
    /// 1 for the first, then dense.
    pub version: u32,
    /// The schema's global id, the same for the same schema on every
    /// stream and never changed (what the Confluent wire format carries);
    /// 0 only in a store from before ids, until the catalog numbers it.
    #[serde(default)]
    pub id: u32,
    pub format: SchemaFormat,
    pub schema: Value,
    pub registered_at_ms: i64,
    pub registered_by: String,
    /// Soft-deleted: left out of the subject's versions and of
    /// compatibility checks, still readable by its id (records carry it).
    #[serde(default)]
    pub deleted: bool,
    /// The other versions this one refers to, as it was registered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
    /// What those references resolve to, transitively.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<Dependency>,
}

impl SchemaVersion {
    pub fn source(&self) -> Source<'_> {
        Source {
            schema: &self.schema,
            dependencies: &self.dependencies,
        }
    }
}

/// Checks that `schema` is a well-formed schema of `format`, with the
/// schemas it refers to; every problem is reported with its JSON pointer.
pub fn check_schema(format: SchemaFormat, source: Source<'_>) -> Result<(), Vec<String>> {
    match format {
        SchemaFormat::JsonSchema => json::check(source.schema),
        SchemaFormat::Avro => AvroSchema::parse_with(source).map(|_| ()),
        SchemaFormat::Protobuf => ProtoSchema::parse_with(source).map(|_| ()),
    }
}

impl SchemaFormat {
    /// A schema of this format given as text (a registry request's
    /// `schema`, a produce request's `value_schema`), as the catalog takes
    /// it: JSON, or for Protobuf the `.proto` file's text as a JSON string.
    pub fn schema_from_text(self, text: &str) -> Result<Value, serde_json::Error> {
        match self {
            SchemaFormat::Protobuf => Ok(Value::String(text.to_string())),
            SchemaFormat::JsonSchema | SchemaFormat::Avro => serde_json::from_str(text),
        }
    }
}

/// `schema` as it is kept: checked (with what it refers to), and for
/// Protobuf printed as canonical text (so the `.proto` text and the base64
/// descriptor of one schema are one schema); JSON schemas are kept as they
/// are (compared in canonical JSON).
pub fn canonical(
    format: SchemaFormat,
    schema: Value,
    dependencies: &[Dependency],
) -> Result<Value, Vec<String>> {
    let source = Source {
        schema: &schema,
        dependencies,
    };
    match format {
        SchemaFormat::Protobuf => ProtoSchema::parse_with(source).map(|s| Value::String(s.text())),
        _ => check_schema(format, source).map(|()| schema),
    }
}

/// `source` as one document that needs nothing else: for Avro, each
/// referenced named type defined where it is first used; for JSON Schema,
/// each `$ref` to a dependency replaced by it. A Protobuf schema keeps its
/// imports (a `.proto` file names its dependencies by path).
pub fn self_contained(format: SchemaFormat, source: Source<'_>) -> Value {
    if source.dependencies.is_empty() {
        return source.schema.clone();
    }
    match format {
        SchemaFormat::Avro => avro::self_contained(source),
        SchemaFormat::JsonSchema => json::inlined(source.schema, source.dependencies),
        SchemaFormat::Protobuf => source.schema.clone(),
    }
}

/// Why `new` may not follow `old` under `mode`, checked as if `old` were
/// the latest version: empty when it may. Each is read with what it
/// refers to, so a change to a referenced type counts.
pub fn incompatibilities(
    mode: Compatibility,
    format: SchemaFormat,
    old: Source<'_>,
    new: Source<'_>,
) -> Vec<String> {
    let (backward, forward) = mode.directions();
    let check = |reader: Source<'_>, writer: Source<'_>| -> Vec<String> {
        match format {
            SchemaFormat::JsonSchema => json::reader_accepts(
                &json::inlined(reader.schema, reader.dependencies),
                &json::inlined(writer.schema, writer.dependencies),
            ),
            SchemaFormat::Avro => {
                match (
                    AvroSchema::parse_with(reader),
                    AvroSchema::parse_with(writer),
                ) {
                    (Ok(r), Ok(w)) => avro::reader_accepts(&r, &w),
                    (Err(e), _) | (_, Err(e)) => e,
                }
            }
            SchemaFormat::Protobuf => {
                match (
                    ProtoSchema::parse_with(reader),
                    ProtoSchema::parse_with(writer),
                ) {
                    (Ok(r), Ok(w)) => protobuf::reader_accepts(&r, &w),
                    (Err(e), _) | (_, Err(e)) => e,
                }
            }
        }
    };
    let label = |direction: &str, problems: Vec<String>| {
        problems
            .into_iter()
            .map(|p| format!("{direction}: {p}"))
            .collect::<Vec<_>>()
    };
    let mut all = Vec::new();
    if backward {
        all.extend(label(
            "BACKWARD (new schema reading old data)",
            check(new, old),
        ));
    }
    if forward {
        all.extend(label(
            "FORWARD (old schema reading new data)",
            check(old, new),
        ));
    }
    all
}

/// Why `new` may not follow `history` (the earlier versions, oldest first)
/// under `mode`: checked against the latest, or against each version for a
/// `_TRANSITIVE` mode, naming the version each problem is with.
pub fn incompatibilities_with(
    mode: Compatibility,
    format: SchemaFormat,
    history: &[SchemaVersion],
    new: Source<'_>,
) -> Vec<String> {
    let against: &[SchemaVersion] = match history.split_last() {
        None => &[],
        Some(_) if mode.transitive() => history,
        Some((latest, _)) => std::slice::from_ref(latest),
    };
    against
        .iter()
        .flat_map(|old| {
            incompatibilities(mode, format, old.source(), new)
                .into_iter()
                .map(move |p| format!("with version {}: {p}", old.version))
        })
        .collect()
}

#[cfg(test)]
mod tests;
