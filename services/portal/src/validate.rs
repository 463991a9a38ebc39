//! Records checked against their stream's schema before they reach Kafka,
//! and written in the form the stream's consumers read.
//!
//! - A JSON Schema stream takes JSON: plain (the `json` embedded format, or
//!   JSON text as binary) or in the Confluent wire format (`jsonschema`, or
//!   binary bytes that carry the magic byte and one of the stream's schema
//!   ids). Plain JSON is checked against the latest version; a stream
//!   registered without a schema (`{}`) takes any bytes.
//! - An Avro stream takes Avro in the Confluent wire format only: from the
//!   `avro` embedded format (JSON values, encoded here) or as binary bytes
//!   that carry one of the stream's schema ids and decode under it.
//!
//! The Confluent wire format is a zero byte, the schema's global id as four
//! big-endian bytes, then the payload. An owner may turn the check of
//! `json` and `binary` records off (`validation_off`, audited); records in
//! a schema-registry format are always encoded under their schema.
//! Compiled schemas are kept by global id: an id names one schema forever.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use freeport_common::error::ErrorCode;
use freeport_common::proto::catalog::v1 as pb;
use freeport_common::proto::catalog::v1::RecordPart as Part;
use freeport_common::schema::codec::Codec;
use freeport_common::schema::wire::{join as in_wire_format, split as wire_format};
use freeport_common::schema::SchemaFormat;
use freeport_common::terms::{Outcome, Reshaper};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

/// Compiled schemas kept; beyond it the cache starts again (ids are
/// immutable, so a miss only costs a compile).
const MAX_COMPILED: usize = 4096;

/// A schema ready to check, encode and decode records: how its values
/// are read and written, and for a JSON Schema its validator.
pub struct Compiled {
    codec: Codec,
    validator: Option<jsonschema::Validator>,
}

impl Compiled {
    /// How values under the schema are read and written.
    pub fn codec(&self) -> &Codec {
        &self.codec
    }

    /// What is wrong with `value` under this schema, if anything: a JSON
    /// Schema's every problem with its place, or why it does not encode.
    fn problems(&self, value: &Value) -> Option<String> {
        match &self.validator {
            Some(validator) => json_problems(validator, value),
            None => self.codec.write(value).err(),
        }
    }
}

/// Compiled schemas by global id.
#[derive(Default)]
pub struct RecordSchemas {
    compiled: Mutex<HashMap<u32, Arc<Compiled>>>,
}

impl RecordSchemas {
    /// `version`'s schema, compiled once per id.
    pub fn compiled(&self, version: &pb::SchemaVersion) -> ApiResult<Arc<Compiled>> {
        if let Some(found) = self.lock().get(&version.id) {
            return Ok(found.clone());
        }
        let codec = Codec::of(version).map_err(|e| ApiError::internal("a stored schema", e))?;
        let validator = match codec {
            Codec::Json => {
                let schema: Value = serde_json::from_str(&version.schema_json)
                    .map_err(|e| ApiError::internal("a stored schema is not JSON", e))?;
                // What its references name, by the names its `$ref`s use.
                let mut options = jsonschema::options();
                for dependency in version
                    .dependencies()
                    .map_err(|e| ApiError::internal("a stored schema", e))?
                {
                    let resource = jsonschema::Resource::from_contents(dependency.schema)
                        .map_err(|e| ApiError::internal("a stored JSON Schema reference", e))?;
                    options = options.with_resource(dependency.reference.name, resource);
                }
                Some(
                    options
                        .build(&schema)
                        .map_err(|e| ApiError::internal("a stored JSON Schema", e))?,
                )
            }
            _ => None,
        };
        let compiled = Arc::new(Compiled { codec, validator });
        let mut cache = self.lock();
        if cache.len() >= MAX_COMPILED {
            cache.clear();
        }
        cache.insert(version.id, compiled.clone());
        Ok(compiled)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Arc<Compiled>>> {
        self.compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Refusal of record `index`'s key or value: Confluent's 42203
/// ("conversion failed"), naming the record, the part and where in it.
fn refused(index: usize, part: Part, what: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        ErrorCode::RecordSchemaMismatch,
        format!("records[{index}].{}: {what}", part.name()),
    )
}

/// Whether a JSON Schema admits every value (`{}`, `true`: a stream
/// registered without a schema).
fn declares_nothing(version: &pb::SchemaVersion) -> bool {
    matches!(version.schema_json.trim(), "{}" | "true")
}

/// Every problem of `value` under a JSON Schema, each with its place.
fn json_problems(validator: &jsonschema::Validator, value: &Value) -> Option<String> {
    let problems: Vec<String> = validator
        .iter_errors(value)
        .take(10)
        .map(|e| {
            let place = e.instance_path.to_string();
            format!("{}: {e}", if place.is_empty() { "/" } else { &place })
        })
        .collect();
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// How the records of one request to `stream` are checked and written.
///
/// Values and keys follow the same rules, each under its own schema; a
/// stream whose key has no schema version takes any key.
#[derive(Clone)]
pub struct Check {
    stream: Arc<pb::Stream>,
    schemas: Arc<RecordSchemas>,
}

impl Check {
    pub fn new(stream: Arc<pb::Stream>, schemas: Arc<RecordSchemas>) -> Check {
        Check { stream, schemas }
    }

    pub fn stream(&self) -> &pb::Stream {
        &self.stream
    }

    fn checking(&self) -> bool {
        !self.stream.validation_off
    }

    /// The format of `part`'s schema; `None` for a key without one.
    pub fn format(&self, part: Part) -> Option<SchemaFormat> {
        let format = match part {
            Part::Value => self.stream.schema_format,
            Part::Key if self.stream.key_schema_versions.is_empty() => return None,
            Part::Key => self.stream.key_schema_format,
        };
        Some(pb::schema_format(format))
    }

    /// The embedded format a part in a binary schema format is produced
    /// in, as a refusal names it; `None` for JSON Schema (plain JSON will
    /// do).
    fn registry_only(&self, part: Part) -> Option<(&'static str, &'static str)> {
        match self.format(part)? {
            SchemaFormat::Avro => Some(("Avro", "avro")),
            SchemaFormat::Protobuf => Some(("Protobuf", "protobuf")),
            SchemaFormat::JsonSchema => None,
        }
    }

    /// `part`'s latest live version; `None` for a key without a schema.
    fn latest(&self, part: Part) -> Option<&pb::SchemaVersion> {
        self.stream.latest_live(part)
    }

    /// The stream's version of `part` with global id `id`.
    pub fn version_with_id(&self, part: Part, id: u32) -> Option<&pb::SchemaVersion> {
        self.stream.versions(part).iter().find(|v| v.id == id)
    }

    /// A key or value of the `json` embedded format (or v3 `JSON`): its
    /// bytes, plain JSON, after checking it against the part's latest
    /// version.
    pub fn json(&self, part: Part, index: usize, value: &Value) -> ApiResult<Vec<u8>> {
        if self.checking() {
            if let Some((name, media)) = self.registry_only(part) {
                return Err(refused(
                    index,
                    part,
                    format!(
                        "stream {}'s {} schema is {name}: produce with application/vnd.kafka.{media}.v2+json ({}_schema_id), or as binary in the Confluent wire format",
                        self.stream.name,
                        part.name(),
                        part.name()
                    ),
                ));
            }
            if let Some(latest) = self.latest(part) {
                if let Some(problems) = self.schemas.compiled(latest)?.problems(value) {
                    return Err(refused(index, part, problems));
                }
            }
        }
        Ok(value.to_string().into_bytes())
    }

    /// Bytes of the `binary` embedded format (or v3 `BINARY`, `STRING`) as
    /// a key or value, checked: in the Confluent wire format with one of
    /// the part's schema ids, or plain JSON for a JSON Schema.
    pub fn bytes(&self, part: Part, index: usize, bytes: &[u8]) -> ApiResult<()> {
        let Some(latest) = self.latest(part).filter(|_| self.checking()) else {
            return Ok(());
        };
        if let Some((id, payload)) = wire_format(bytes) {
            let version = self.version_with_id(part, id).ok_or_else(|| {
                refused(
                    index,
                    part,
                    format!(
                        "schema id {id} in its wire-format prefix is not one of stream {}'s {} schema versions",
                        self.stream.name,
                        part.name()
                    ),
                )
            })?;
            let compiled = self.schemas.compiled(version)?;
            let value = compiled
                .codec
                .read(payload, true)
                .map_err(|e| refused(index, part, format!("not a value of schema id {id}: {e}")))?;
            return match &compiled.validator {
                Some(validator) => json_problems(validator, &value)
                    .map_or(Ok(()), |p| Err(refused(index, part, p))),
                None => Ok(()),
            };
        }
        if let Some((name, _)) = self.registry_only(part) {
            return Err(refused(
                index,
                part,
                format!(
                    "stream {}'s {} schema is {name}, in the Confluent wire format (a zero byte, then one of its schema ids): these bytes are not",
                    self.stream.name,
                    part.name()
                ),
            ));
        }
        if declares_nothing(latest) {
            // A stream registered without a schema says nothing of its
            // values: its bytes are its owner's business.
            return Ok(());
        }
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            refused(
                index,
                part,
                format!(
                    "stream {}'s {} schema is JSON; these bytes are not: {e}",
                    self.stream.name,
                    part.name()
                ),
            )
        })?;
        self.schemas
            .compiled(latest)?
            .problems(&value)
            .map_or(Ok(()), |p| Err(refused(index, part, p)))
    }

    /// A key or value of a schema-registry embedded format (`avro`,
    /// `jsonschema`) under `version`: its bytes in the Confluent wire
    /// format.
    pub fn registry_encode(
        &self,
        part: Part,
        index: usize,
        version: &pb::SchemaVersion,
        value: &Value,
    ) -> ApiResult<Vec<u8>> {
        let compiled = self.schemas.compiled(version)?;
        if let Some(validator) = &compiled.validator {
            if let Some(problems) = json_problems(validator, value) {
                return Err(refused(index, part, problems));
            }
        }
        let payload = compiled.codec.write(value).map_err(|e| {
            refused(
                index,
                part,
                format!("does not fit schema id {}: {e}", version.id),
            )
        })?;
        Ok(in_wire_format(version.id, &payload))
    }
}

/// A record's value as a reader gets it.
pub enum Shown {
    /// Bytes as they are (or as the terms left them).
    Bytes(Option<Vec<u8>>),
    /// A value in the Confluent wire format, decoded (and reshaped).
    Json(Value),
}

impl Shown {
    /// The value's size, as a read's byte budget counts it.
    pub fn size(&self) -> usize {
        match self {
            Shown::Bytes(bytes) => bytes.as_ref().map_or(0, Vec::len),
            Shown::Json(value) => value.to_string().len(),
        }
    }
}

/// What a reader under `reshaper` gets of `payload`: a value in the
/// Confluent wire format decoded as the plain JSON it holds and reshaped,
/// other bytes reshaped as JSON; `None` when the terms leave the record
/// out or cannot be applied to it (a wire-format value that does not
/// decode is never shown unreshaped).
pub fn under_terms(
    payload: Option<&[u8]>,
    reshaper: &Reshaper,
    decoder: Option<&Decoder>,
) -> Option<Shown> {
    match payload.and_then(|b| decoder.and_then(|d| d.plain(b))) {
        Some(Ok(value)) => reshaper.apply_value(value).ok().flatten().map(Shown::Json),
        Some(Err(_)) => None,
        None => match reshaper.apply(payload) {
            Outcome::Deliver(value) => Some(Shown::Bytes(value)),
            Outcome::Skip | Outcome::DeadLetter(_) => None,
        },
    }
}

/// Turns values in the Confluent wire format back into JSON, under the
/// schema their id names (a consumer instance of the `avro` or
/// `jsonschema` format).
#[derive(Clone)]
pub struct Decoder {
    view: Arc<crate::access::AccessView>,
    schemas: Arc<RecordSchemas>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder").finish_non_exhaustive()
    }
}

impl Decoder {
    pub fn new(view: Arc<crate::access::AccessView>, schemas: Arc<RecordSchemas>) -> Decoder {
        Decoder { view, schemas }
    }

    /// `bytes` as JSON: Avro decoded (in Avro's JSON encoding, unions
    /// tagged), JSON parsed.
    pub fn json(&self, bytes: &[u8]) -> Result<Value, String> {
        let (id, payload) = wire_format(bytes)
            .ok_or("not in the Confluent wire format (a zero byte, then a schema id)")?;
        self.read(id, payload, true)
    }

    /// Bytes in the wire format as their plain JSON value (unions
    /// untagged, as contract terms and push readers see values); `None`
    /// when the bytes are not in the wire format.
    pub fn plain(&self, bytes: &[u8]) -> Option<Result<Value, String>> {
        let (id, payload) = wire_format(bytes)?;
        Some(self.read(id, payload, false))
    }

    fn read(&self, id: u32, payload: &[u8], tagged: bool) -> Result<Value, String> {
        let version = self
            .view
            .schema_with_id(id)
            .ok_or_else(|| format!("schema id {id} is not known to this hub"))?;
        let compiled = self.schemas.compiled(&version).map_err(|e| e.message)?;
        compiled.codec.read(payload, tagged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stream(format: pb::SchemaFormat, schema: Value) -> pb::Stream {
        pb::Stream {
            name: "orders".into(),
            schema_format: format.into(),
            schema_versions: vec![pb::SchemaVersion {
                version: 1,
                id: 7,
                format: format.into(),
                schema_json: schema.to_string(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn json_stream() -> pb::Stream {
        stream(
            pb::SchemaFormat::JsonSchema,
            json!({"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}, "total": {"type": "number"}}}),
        )
    }

    fn avro_stream() -> pb::Stream {
        stream(
            pb::SchemaFormat::Avro,
            json!({"type": "record", "name": "Order", "fields": [{"name": "id", "type": "long"}]}),
        )
    }

    #[test]
    fn json_records_are_checked_against_the_latest_version_naming_the_field() {
        let schemas = Arc::new(RecordSchemas::default());
        let check = Check::new(Arc::new(json_stream()), schemas.clone());
        assert!(check
            .json(Part::Value, 0, &json!({"id": 1, "total": 2.5}))
            .is_ok());
        let refused = check
            .json(Part::Value, 3, &json!({"id": 1, "total": "lots"}))
            .unwrap_err();
        assert_eq!(refused.code, ErrorCode::RecordSchemaMismatch);
        assert!(
            refused.message.starts_with("records[3].value: /total:"),
            "{}",
            refused.message
        );
        assert!(check.bytes(Part::Value, 0, br#"{"id": 1}"#).is_ok());
        assert!(check
            .bytes(Part::Value, 0, br#"{"total": 1}"#)
            .unwrap_err()
            .message
            .contains("id"));
        assert!(check.bytes(Part::Value, 0, b"not json").is_err());
        let open = stream(pb::SchemaFormat::JsonSchema, json!({}));
        assert!(
            Check::new(Arc::new(open), schemas.clone())
                .bytes(Part::Value, 0, b"\x01 any bytes")
                .is_ok(),
            "a stream without a schema takes any bytes"
        );
        let mut off = json_stream();
        off.validation_off = true;
        assert!(
            Check::new(Arc::new(off), schemas)
                .bytes(Part::Value, 0, b"not json")
                .is_ok(),
            "the owner turned it off"
        );
    }

    #[test]
    fn avro_records_are_wire_format_under_one_of_the_stream_s_ids() {
        let stream = avro_stream();
        let version = stream.schema_versions[0].clone();
        let check = Check::new(Arc::new(stream), Arc::new(RecordSchemas::default()));
        let version = &version;
        let bytes = check
            .registry_encode(Part::Value, 0, version, &json!({"id": 5}))
            .unwrap();
        assert_eq!(bytes, [0, 0, 0, 0, 7, 10], "magic, id 7, zigzag 5");
        assert!(check.bytes(Part::Value, 0, &bytes).is_ok());
        assert!(check
            .bytes(Part::Value, 0, &[0, 0, 0, 0, 8, 10])
            .unwrap_err()
            .message
            .contains("schema id 8"));
        assert!(
            check.bytes(Part::Value, 0, &[0, 0, 0, 0, 7]).is_err(),
            "no payload"
        );
        assert!(check
            .bytes(Part::Value, 0, br#"{"id": 5}"#)
            .unwrap_err()
            .message
            .contains("wire format"));
        assert!(check
            .json(Part::Value, 0, &json!({"id": 5}))
            .unwrap_err()
            .message
            .contains("avro"));
        let wrong = check
            .registry_encode(Part::Value, 1, version, &json!({"id": "x"}))
            .unwrap_err();
        assert!(
            wrong
                .message
                .starts_with("records[1].value: does not fit schema id 7: /id:"),
            "{}",
            wrong.message
        );
    }
}
