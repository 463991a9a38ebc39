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
//! Every incompatibility is reported with the place it occurs and what broke.

mod avro;
mod json;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use avro::AvroSchema;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaFormat {
    #[default]
    JsonSchema,
    Avro,
}

impl SchemaFormat {
    pub fn parse(text: &str) -> Option<SchemaFormat> {
        match text {
            "json_schema" | "json" => Some(SchemaFormat::JsonSchema),
            "avro" => Some(SchemaFormat::Avro),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SchemaFormat::JsonSchema => "json_schema",
            SchemaFormat::Avro => "avro",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    #[default]
    Backward,
    Forward,
    Full,
    None,
}

impl Compatibility {
    pub fn parse(text: &str) -> Option<Compatibility> {
        match text.to_ascii_uppercase().as_str() {
            "BACKWARD" => Some(Compatibility::Backward),
            "FORWARD" => Some(Compatibility::Forward),
            "FULL" => Some(Compatibility::Full),
            "NONE" => Some(Compatibility::None),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Compatibility::Backward => "BACKWARD",
            Compatibility::Forward => "FORWARD",
            Compatibility::Full => "FULL",
            Compatibility::None => "NONE",
        }
    }
}

/// One registered version of a stream's value schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaVersion {
    /// 1 for the first, then dense.
    pub version: u32,
    pub format: SchemaFormat,
    pub schema: Value,
    pub registered_at_ms: i64,
    pub registered_by: String,
}

/// Checks that `schema` is a well-formed schema of `format`; every problem
/// is reported with its JSON pointer.
pub fn check_schema(format: SchemaFormat, schema: &Value) -> Result<(), Vec<String>> {
    match format {
        SchemaFormat::JsonSchema => json::check(schema),
        SchemaFormat::Avro => AvroSchema::parse(schema).map(|_| ()),
    }
}

/// Why `new` may not follow `old` under `mode`: empty when it may.
pub fn incompatibilities(
    mode: Compatibility,
    format: SchemaFormat,
    old: &Value,
    new: &Value,
) -> Vec<String> {
    let check = |reader: &Value, writer: &Value| -> Vec<String> {
        match format {
            SchemaFormat::JsonSchema => json::reader_accepts(reader, writer),
            SchemaFormat::Avro => match (AvroSchema::parse(reader), AvroSchema::parse(writer)) {
                (Ok(r), Ok(w)) => avro::reader_accepts(&r, &w),
                (Err(e), _) | (_, Err(e)) => e,
            },
        }
    };
    let label = |direction: &str, problems: Vec<String>| {
        problems
            .into_iter()
            .map(|p| format!("{direction}: {p}"))
            .collect::<Vec<_>>()
    };
    match mode {
        Compatibility::None => vec![],
        Compatibility::Backward => label("BACKWARD (new schema reading old data)", check(new, old)),
        Compatibility::Forward => label("FORWARD (old schema reading new data)", check(old, new)),
        Compatibility::Full => {
            let mut all = label("BACKWARD (new schema reading old data)", check(new, old));
            all.extend(label(
                "FORWARD (old schema reading new data)",
                check(old, new),
            ));
            all
        }
    }
}

#[cfg(test)]
mod tests;
