//! Values under one registered schema, read from and written to the
//! payload of the Confluent wire format (what follows the zero byte and
//! the schema id): Avro binary, Protobuf (message indexes, then the
//! message), or JSON text. The portal and the link read and write values
//! through this one type.

use serde_json::Value;

use super::{avro_binary, AvroSchema, ProtoSchema, SchemaFormat, Source};
use crate::proto::catalog::v1 as pb;

/// How values under one schema are read and written.
#[derive(Debug, Clone)]
pub enum Codec {
    Avro(AvroSchema),
    Protobuf(ProtoSchema),
    Json,
}

impl Codec {
    /// The codec of a stored schema version.
    pub fn of(version: &pb::SchemaVersion) -> Result<Codec, String> {
        let schema: Value = serde_json::from_str(&version.schema_json)
            .map_err(|e| format!("schema id {} is not stored as JSON: {e}", version.id))?;
        let dependencies = version.dependencies()?;
        let source = Source {
            schema: &schema,
            dependencies: &dependencies,
        };
        match pb::schema_format(version.format) {
            SchemaFormat::Avro => AvroSchema::parse_with(source)
                .map(Codec::Avro)
                .map_err(|e| e.join("; ")),
            SchemaFormat::Protobuf => ProtoSchema::parse_with(source)
                .map(Codec::Protobuf)
                .map_err(|e| e.join("; ")),
            SchemaFormat::JsonSchema => Ok(Codec::Json),
        }
    }

    /// A payload as JSON: Avro decoded (unions tagged as Avro's JSON
    /// encoding has them when `tagged`, else plain, as contract terms and
    /// push readers see values), Protobuf in its JSON mapping, JSON parsed.
    pub fn read(&self, payload: &[u8], tagged: bool) -> Result<Value, String> {
        match self {
            Codec::Avro(schema) if tagged => avro_binary::decode(schema, payload),
            Codec::Avro(schema) => avro_binary::decode_plain(schema, payload),
            Codec::Protobuf(schema) => schema.decode(payload),
            Codec::Json => serde_json::from_slice(payload).map_err(|e| e.to_string()),
        }
    }

    /// A JSON value as a payload under this schema; refused, naming where,
    /// when it does not fit (JSON is not checked here).
    pub fn write(&self, value: &Value) -> Result<Vec<u8>, String> {
        match self {
            Codec::Avro(schema) => avro_binary::encode(schema, value),
            Codec::Protobuf(schema) => schema.encode(value),
            Codec::Json => serde_json::to_vec(value).map_err(|e| e.to_string()),
        }
    }
}
