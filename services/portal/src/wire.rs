//! The Kafka REST Proxy's wire vocabulary, in one place: the v2 media
//! types, the embedded formats of keys and values (v2), and the data types
//! of the v3 records API. Handlers in `rest/` and the consumer instances
//! speak it; nothing else defines these names.

use base64::Engine;
use rdkafka::message::Headers;
use rdkafka::Message;
use serde::{Deserialize, Serialize};

/// v2 requests and answers with JSON keys and values.
pub const JSON_V2: &str = "application/vnd.kafka.json.v2+json";
/// v2 requests and answers with base64 keys and values.
pub const BINARY_V2: &str = "application/vnd.kafka.binary.v2+json";
/// v2 answers that carry no records.
pub const RESPONSE_V2: &str = "application/vnd.kafka.v2+json";
/// v2 requests and answers with Avro values, as JSON, under a schema.
pub const AVRO_V2: &str = "application/vnd.kafka.avro.v2+json";
/// v2 requests and answers with JSON values under a JSON Schema.
pub const JSONSCHEMA_V2: &str = "application/vnd.kafka.jsonschema.v2+json";
/// v2 requests and answers with Protobuf values, as JSON (the proto3 JSON
/// mapping, proto field names), under a schema.
pub const PROTOBUF_V2: &str = "application/vnd.kafka.protobuf.v2+json";
/// v1's media types: the same bodies as v2's, as Confluent's REST Proxy
/// takes them.
pub const JSON_V1: &str = "application/vnd.kafka.json.v1+json";
pub const BINARY_V1: &str = "application/vnd.kafka.binary.v1+json";
pub const AVRO_V1: &str = "application/vnd.kafka.avro.v1+json";
pub const RESPONSE_V1: &str = "application/vnd.kafka.v1+json";

/// How v2 carries keys and values: a produce request's content type, a
/// consumer instance's `format`, a records request's `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Keys and values are JSON documents (text that is not JSON comes as
    /// a JSON string).
    Json,
    /// Keys and values are base64.
    Binary,
    /// Values are JSON in Avro's JSON encoding, written and read in Avro's
    /// binary encoding under a registered schema (Confluent wire format).
    Avro,
    /// Values are JSON under a registered JSON Schema (Confluent wire
    /// format).
    JsonSchema,
    /// Values are JSON in the proto3 JSON mapping, written and read as the
    /// first message of a registered Protobuf schema (Confluent wire
    /// format, message indexes included).
    Protobuf,
}

impl Format {
    /// The name a consumer instance's `format` setting uses.
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Binary => "binary",
            Format::Avro => "avro",
            Format::JsonSchema => "jsonschema",
            Format::Protobuf => "protobuf",
        }
    }

    pub const ALL: [Format; 5] = [
        Format::Json,
        Format::Binary,
        Format::Avro,
        Format::JsonSchema,
        Format::Protobuf,
    ];

    /// Whether values are written under a registered schema, with its id.
    pub fn uses_registry(self) -> bool {
        self.schema_format().is_some()
    }

    /// The schema format a schema-registry embedded format writes under.
    pub fn schema_format(self) -> Option<freeport_common::schema::SchemaFormat> {
        use freeport_common::schema::SchemaFormat;
        match self {
            Format::Avro => Some(SchemaFormat::Avro),
            Format::JsonSchema => Some(SchemaFormat::JsonSchema),
            Format::Protobuf => Some(SchemaFormat::Protobuf),
            Format::Json | Format::Binary => None,
        }
    }

    /// The format a consumer instance's `format` setting names.
    pub fn named(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The media type of records in this format.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Json => JSON_V2,
            Format::Binary => BINARY_V2,
            Format::Avro => AVRO_V2,
            Format::JsonSchema => JSONSCHEMA_V2,
            Format::Protobuf => PROTOBUF_V2,
        }
    }

    /// REST Proxy v1's media type of records in this format, where v1 had
    /// the format.
    pub fn v1_media_type(self) -> Option<&'static str> {
        match self {
            Format::Json => Some(JSON_V1),
            Format::Binary => Some(BINARY_V1),
            Format::Avro => Some(AVRO_V1),
            Format::JsonSchema | Format::Protobuf => None,
        }
    }

    /// The format of a produce request's body, by its media type (plain
    /// JSON is JSON).
    pub fn of_content_type(media_type: &str) -> Option<Format> {
        match media_type {
            JSON_V2 | JSON_V1 | "application/json" => Some(Format::Json),
            // v1's generic type carries binary records, v1's default
            // embedded format (what Confluent's v1 clients send).
            BINARY_V2 | BINARY_V1 | RESPONSE_V1 => Some(Format::Binary),
            AVRO_V2 | AVRO_V1 => Some(Format::Avro),
            JSONSCHEMA_V2 => Some(Format::JsonSchema),
            PROTOBUF_V2 => Some(Format::Protobuf),
            _ => None,
        }
    }

    /// The format an `Accept` header asks for, if it names one.
    pub fn accepted(accept: &str) -> Option<Format> {
        let accept = accept.to_ascii_lowercase();
        Format::ALL.into_iter().find(|f| {
            accept.contains(f.media_type())
                || f.v1_media_type().is_some_and(|v1| accept.contains(v1))
        })
    }
}

/// What a REST Proxy v2 answer without records may be labelled: any v2
/// media type, and the two generic ones Confluent's REST Proxy answers in.
pub const ANSWERS_V2: [&str; 9] = [
    RESPONSE_V2,
    RESPONSE_V1,
    JSON_V2,
    BINARY_V2,
    AVRO_V2,
    JSONSCHEMA_V2,
    PROTOBUF_V2,
    "application/vnd.kafka+json",
    "application/json",
];
/// What a consumer instance's records may be labelled.
pub const RECORDS_V2: [&str; 8] = [
    JSON_V2,
    BINARY_V2,
    AVRO_V2,
    JSONSCHEMA_V2,
    PROTOBUF_V2,
    JSON_V1,
    BINARY_V1,
    AVRO_V1,
];

/// Whether an `Accept` header admits one of `produced`: a media range that
/// names it or a wildcard over it (`*/*`, `application/*`), with a nonzero
/// quality. Malformed ranges admit nothing.
pub fn accepts(accept: &str, produced: &[&str]) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let refused = parts.any(|param| {
            param.split_once('=').is_some_and(|(k, v)| {
                k.trim() == "q" && v.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
            })
        });
        if refused {
            return false;
        }
        let Some((kind, subtype)) = media.split_once('/') else {
            return false;
        };
        produced.iter().any(|produced| {
            let (p_kind, p_subtype) = produced.split_once('/').unwrap_or_default();
            (kind == "*" && subtype == "*")
                || (kind == p_kind && (subtype == "*" || subtype == p_subtype))
        })
    })
}

/// A record header as every API shows and takes it: its value as base64
/// (absent or null for a null value).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Header {
    #[schema(min_length = 1)]
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
}

impl Header {
    /// A Kafka record's headers.
    pub fn all_of<M: Message>(message: &M) -> Vec<Header> {
        message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| Header {
                        name: h.key.to_string(),
                        value: h
                            .value
                            .map(|v| base64::engine::general_purpose::STANDARD.encode(v)),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// How the v3 records API carries a key or a value.
#[derive(Debug, Serialize, Deserialize, Default, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum DataType {
    #[default]
    Json,
    Binary,
    String,
}

impl DataType {
    pub fn name(self) -> &'static str {
        match self {
            DataType::Json => "JSON",
            DataType::Binary => "BINARY",
            DataType::String => "STRING",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_round_trip_through_their_names_and_media_types() {
        for format in Format::ALL {
            assert_eq!(Format::named(format.name()), Some(format));
            assert_eq!(Format::of_content_type(format.media_type()), Some(format));
            assert_eq!(Format::accepted(format.media_type()), Some(format));
        }
        assert_eq!(
            Format::of_content_type("application/json"),
            Some(Format::Json)
        );
        assert_eq!(Format::of_content_type("text/plain"), None);
        assert_eq!(Format::named("protobuf"), Some(Format::Protobuf));
        assert_eq!(Format::named("thrift"), None);
        assert_eq!(Format::of_content_type(JSON_V1), Some(Format::Json));
        assert_eq!(Format::of_content_type(AVRO_V1), Some(Format::Avro));
        assert_eq!(Format::of_content_type(RESPONSE_V1), Some(Format::Binary));
        assert_eq!(Format::accepted(BINARY_V1), Some(Format::Binary));
        assert_eq!(Format::accepted("*/*"), None);
    }

    #[test]
    fn accept_headers_admit_what_they_name_or_a_wildcard_over_it() {
        for accept in [
            "application/vnd.kafka.v2+json",
            "application/vnd.kafka.v2+json, application/vnd.kafka+json, application/json",
            "application/json",
            "*/*",
            "application/*",
            "text/html, application/json;q=0.5",
            "APPLICATION/JSON",
        ] {
            assert!(accepts(accept, &ANSWERS_V2), "{accept}");
        }
        for accept in [
            "text/html",
            "application/xml",
            "application/json;q=0",
            "json",
            "",
        ] {
            assert!(!accepts(accept, &ANSWERS_V2), "{accept}");
        }
        assert!(accepts("application/vnd.kafka.binary.v2+json", &RECORDS_V2));
        assert!(!accepts("application/vnd.kafka.v2+json", &RECORDS_V2));
    }
}
