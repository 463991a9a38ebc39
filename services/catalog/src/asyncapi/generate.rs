//! AsyncAPI 3.0 documents generated from the catalog: one per stream, and
//! one per partner listing everything it receives.

use freeport_common::config::ClusterConfig;
use freeport_common::contract::ContractTerms;
use freeport_common::proto::catalog::v1 as pb;
use freeport_common::schema::{SchemaFormat, Source};
use serde_json::{json, Map, Value};

/// How AsyncAPI names an Avro payload schema.
const AVRO_SCHEMA_FORMAT: &str = "application/vnd.apache.avro+json;version=1.9.0";
/// How AsyncAPI names a Protobuf payload schema (the `.proto` text).
const PROTOBUF_SCHEMA_FORMAT: &str = "application/vnd.google.protobuf;version=3";

/// A payload schema of `format` as AsyncAPI carries it: JSON Schema as it
/// is, Avro and Protobuf in a multi-format schema object.
fn payload(format: SchemaFormat, schema: Value) -> Value {
    match format {
        SchemaFormat::JsonSchema => schema,
        SchemaFormat::Avro => json!({"schemaFormat": AVRO_SCHEMA_FORMAT, "schema": schema}),
        SchemaFormat::Protobuf => json!({"schemaFormat": PROTOBUF_SCHEMA_FORMAT, "schema": schema}),
    }
}

/// Version of the Kafka bindings we emit.
const KAFKA_BINDING_VERSION: &str = "0.5.0";

/// AsyncAPI component keys allow only `[A-Za-z0-9_.-]`, server keys only
/// `[A-Za-z0-9_-]`.
fn key(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The first bootstrap server: AsyncAPI's `host` names one.
fn host(cluster: &ClusterConfig) -> String {
    cluster
        .bootstrap
        .split(',')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The Kafka binding of a stream's messages: the key's schema (its latest
/// version; an Avro key, which a binding's schema object cannot hold, as
/// bytes with the Avro schema beside it; `topic` names its subject), and where the schema id travels
/// when records are in the Confluent wire format.
fn message_binding(stream: &pb::Stream, topic: &str) -> Value {
    let key_format = pb::schema_format(stream.key_schema_format);
    let key = match stream.latest_live(pb::RecordPart::Key) {
        None => json!({"type": "string"}),
        Some(latest) => {
            let schema: Value =
                serde_json::from_str(&latest.schema_json).unwrap_or_else(|_| json!({}));
            let (name, extension) = match key_format {
                SchemaFormat::JsonSchema => return binding_with_key(stream, schema),
                SchemaFormat::Avro => ("Avro", "x-avro-schema"),
                SchemaFormat::Protobuf => ("Protobuf", "x-protobuf-schema"),
            };
            json!({
                "type": "string",
                "format": "binary",
                "description": format!(
                    "{name} in the Confluent wire format: schema registry subject {topic}-key, version {}, id {}",
                    latest.version, latest.id
                ),
                extension: schema,
            })
        }
    };
    binding_with_key(stream, key)
}

fn binding_with_key(stream: &pb::Stream, key: Value) -> Value {
    let binary = |format: i32| pb::schema_format(format) != SchemaFormat::JsonSchema;
    let mut binding = Map::new();
    binding.insert("key".into(), key);
    if binary(stream.schema_format)
        || binary(stream.key_schema_format) && !stream.key_schema_versions.is_empty()
    {
        // A zero byte, then the schema's four-byte id, before the payload.
        binding.insert("schemaIdLocation".into(), json!("payload"));
        binding.insert("schemaIdPayloadEncoding".into(), json!("4"));
        binding.insert("schemaLookupStrategy".into(), json!("TopicIdStrategy"));
    }
    binding.insert("bindingVersion".into(), json!(KAFKA_BINDING_VERSION));
    Value::Object(binding)
}

/// A document describing one stream: the cluster that serves it, its
/// channel (the topic), the receive operation and the message with its
/// payload schema and Kafka bindings.
pub fn stream_document(
    stream: &pb::Stream,
    cluster: &ClusterConfig,
    partitions: Option<usize>,
) -> Value {
    let server = key(&stream.cluster);
    let channel = key(&stream.name);
    let message = format!("{}Record", key(&stream.name));
    let schema: Value =
        serde_json::from_str(&stream.value_schema_json).unwrap_or_else(|_| json!({}));
    let payload = payload(pb::schema_format(stream.schema_format), schema);
    let mut info = Map::new();
    info.insert(
        "title".into(),
        json!(if stream.title.is_empty() {
            &stream.name
        } else {
            &stream.title
        }),
    );
    info.insert("version".into(), json!("1.0.0"));
    if !stream.description.is_empty() {
        info.insert("description".into(), json!(stream.description));
    }
    if !stream.tags.is_empty() {
        info.insert(
            "tags".into(),
            Value::Array(stream.tags.iter().map(|t| json!({"name": t})).collect()),
        );
    }
    info.insert("x-freeport-owner".into(), json!(stream.owner));

    let mut channel_binding = Map::new();
    channel_binding.insert("topic".into(), json!(stream.topic));
    if let Some(p) = partitions {
        channel_binding.insert("partitions".into(), json!(p));
    }
    channel_binding.insert("bindingVersion".into(), json!(KAFKA_BINDING_VERSION));

    json!({
        "asyncapi": "3.0.0",
        "id": format!("urn:freeport:stream:{}", stream.name),
        "info": info,
        "defaultContentType": "application/json",
        "servers": {
            server.clone(): {
                "host": host(cluster),
                "protocol": "kafka",
                "description": if cluster.description.is_empty() {
                    format!("Kafka cluster {}", stream.cluster)
                } else {
                    cluster.description.clone()
                },
                "bindings": {"kafka": {"bindingVersion": KAFKA_BINDING_VERSION}},
            }
        },
        "channels": {
            channel.clone(): {
                "address": stream.topic,
                "title": stream.name,
                "servers": [{"$ref": format!("#/servers/{server}")}],
                "messages": {
                    message.clone(): {"$ref": format!("#/components/messages/{message}")}
                },
                "bindings": {"kafka": channel_binding},
            }
        },
        "operations": {
            format!("receive_{channel}"): {
                "action": "receive",
                "title": format!("Receive {}", stream.name),
                "channel": {"$ref": format!("#/channels/{channel}")},
                "messages": [{"$ref": format!("#/channels/{channel}/messages/{message}")}],
                "bindings": {"kafka": {"bindingVersion": KAFKA_BINDING_VERSION}},
            }
        },
        "components": {
            "messages": {
                message.clone(): {
                    "name": message,
                    "contentType": "application/json",
                    "payload": payload,
                    "bindings": {"kafka": message_binding(stream, &stream.topic)},
                }
            }
        }
    })
}

/// One stream a partner receives: the contract, its stream, and the
/// cluster the records arrive on (`None` for a push contract, read from
/// the portal over HTTP).
pub struct Delivery<'a> {
    pub contract: &'a pb::Contract,
    pub stream: &'a pb::Stream,
    pub destination: Option<&'a ClusterConfig>,
}

/// Where a partner reaches the portal's push feeds: its `host[:port]` (as
/// the partner asked for the document) and whether it speaks TLS.
#[derive(Debug, Clone, Copy)]
pub struct Portal<'a> {
    pub host: &'a str,
    pub secure: bool,
}

/// Version of the HTTP and WebSocket bindings we emit.
const HTTP_BINDING_VERSION: &str = "0.3.0";
const WS_BINDING_VERSION: &str = "0.1.0";

/// The schema of what a contract's partner receives, as an AsyncAPI
/// payload: the stream's latest value schema as the contract's terms
/// reshape it (the one home of that rule, which the link's delivered
/// schemas come from too), written self-contained.
fn delivered_payload(contract: &pb::Contract, stream: &pb::Stream) -> (SchemaFormat, Value) {
    let schema: Value =
        serde_json::from_str(&stream.value_schema_json).unwrap_or_else(|_| json!({}));
    let format = pb::schema_format(stream.schema_format);
    let dependencies = stream
        .latest_live(pb::RecordPart::Value)
        .and_then(|v| v.dependencies().ok())
        .unwrap_or_default();
    let source = Source {
        schema: &schema,
        dependencies: &dependencies,
    };
    let schema = ContractTerms::from_pb(contract.terms.as_ref())
        .and_then(|terms| freeport_common::schema::reshape::reshaped_schema(format, source, &terms))
        .unwrap_or_else(|_| schema.clone());
    // One document: what the schema refers to is written into it.
    let schema = freeport_common::schema::self_contained(
        format,
        Source {
            schema: &schema,
            dependencies: &dependencies,
        },
    );
    (format, schema)
}

/// What the contract's terms do to values, in words.
fn terms_description(contract: &pb::Contract) -> String {
    let mut description = String::new();
    let Some(terms) = &contract.terms else {
        return description;
    };
    for (fields, what) in [
        (&terms.drop_fields, "Dropped"),
        (&terms.mask_fields, "Masked"),
        (&terms.hash_fields, "Hashed"),
    ] {
        if !fields.is_empty() {
            description.push_str(&format!(" {what} fields: {}.", fields.join(", ")));
        }
    }
    description
}

/// A record as a push feed sends it (the data of an SSE `record` event, the
/// `record` of a WebSocket message): its value as JSON, a value in Avro or
/// Protobuf decoded to it.
fn pushed_record(format: SchemaFormat, schema: Value) -> Value {
    let value = match format {
        SchemaFormat::JsonSchema => schema,
        SchemaFormat::Avro | SchemaFormat::Protobuf => json!({
            "description": format!("The value as JSON, decoded from {} (its schema: the stream's, as the terms reshape it).", if format == SchemaFormat::Avro { "Avro" } else { "Protobuf" }),
        }),
    };
    json!({
        "type": "object",
        "required": ["partition", "offset", "timestamp", "headers"],
        "properties": {
            "partition": {"type": "integer"},
            "offset": {"type": "integer"},
            "timestamp": {"type": "integer", "description": "milliseconds since the epoch"},
            "key": {"description": "the key as JSON or text; key_base64 when it is neither"},
            "key_base64": {"type": "string"},
            "value": value,
            "value_base64": {"type": "string"},
            "headers": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "value": {"type": "string", "description": "base64"}
            }}},
        },
    })
}

/// One document for a partner: every stream it receives, each as a channel
/// on its own (destination) cluster, reached with its client certificate;
/// a push contract's stream as the portal's Server-Sent Events and
/// WebSocket channels (when `portal` says where the portal is), reached
/// with an API key.
pub fn partner_document(
    org: &str,
    deliveries: &[Delivery<'_>],
    portal: Option<Portal<'_>>,
) -> Value {
    let mut servers = Map::new();
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    for delivery in deliveries {
        let contract = delivery.contract;
        let stream = delivery.stream;
        let (format, schema) = delivered_payload(contract, stream);
        let description = format!(
            "Stream {} of {}, delivered under contract {}.{}",
            stream.name,
            stream.owner,
            contract.id,
            terms_description(contract)
        );
        let title = if stream.title.is_empty() {
            &stream.name
        } else {
            &stream.title
        };
        match (contract.destination.as_ref(), delivery.destination) {
            (Some(destination), Some(cluster)) => {
                let server = key(&destination.cluster);
                servers.entry(server.clone()).or_insert_with(|| {
                    json!({
                        "host": host(cluster),
                        "protocol": "kafka",
                        "description": format!("Kafka cluster {} (yours), where Freeport delivers", destination.cluster),
                        "security": [{"$ref": "#/components/securitySchemes/clientCertificate"}],
                        "bindings": {"kafka": {"bindingVersion": KAFKA_BINDING_VERSION}},
                    })
                });
                let channel = key(&format!("{}_{}", destination.cluster, destination.topic));
                let message = format!("{}Record", key(&stream.name));
                messages.insert(
                    message.clone(),
                    json!({
                        "name": message,
                        "title": title,
                        "contentType": "application/json",
                        "payload": payload(format, schema),
                        "headers": {
                            "type": "object",
                            "description": "Freeport adds provenance headers to every record.",
                            "properties": {
                                "freeport.source.cluster": {"type": "string"},
                                "freeport.source.topic": {"type": "string"},
                                "freeport.source.partition": {"type": "string"},
                                "freeport.source.offset": {"type": "string"},
                                "freeport.contract": {"type": "string", "const": contract.id},
                            }
                        },
                        "bindings": {"kafka": message_binding(stream, &destination.topic)},
                    }),
                );
                channels.insert(
                    channel.clone(),
                    json!({
                        "address": destination.topic,
                        "title": stream.name,
                        "description": description,
                        "servers": [{"$ref": format!("#/servers/{server}")}],
                        "messages": {message.clone(): {"$ref": format!("#/components/messages/{message}")}},
                        "bindings": {"kafka": {"topic": destination.topic, "bindingVersion": KAFKA_BINDING_VERSION}},
                    }),
                );
                operations.insert(
                    format!("receive_{channel}"),
                    json!({
                        "action": "receive",
                        "title": format!("Receive {}", stream.name),
                        "channel": {"$ref": format!("#/channels/{channel}")},
                        "messages": [{"$ref": format!("#/channels/{channel}/messages/{message}")}],
                    }),
                );
            }
            (None, _) => {
                let Some(portal) = portal else { continue };
                let (http, ws) = if portal.secure {
                    ("https", "wss")
                } else {
                    ("http", "ws")
                };
                servers.entry("freeport-sse".to_string()).or_insert_with(|| {
                    json!({
                        "host": portal.host,
                        "protocol": http,
                        "description": "The Freeport portal: Server-Sent Events feeds of the streams you read over HTTP (push contracts).",
                        "security": [{"$ref": "#/components/securitySchemes/apiKey"}],
                    })
                });
                servers
                    .entry("freeport-websocket".to_string())
                    .or_insert_with(|| {
                        json!({
                            "host": portal.host,
                            "protocol": ws,
                            "description": "The Freeport portal: the same feeds as WebSockets.",
                            "security": [{"$ref": "#/components/securitySchemes/apiKey"}],
                        })
                    });
                let address = format!("/v1/streams/{}/events", stream.name);
                let record = pushed_record(format, schema);
                let base = key(&stream.name);
                let event = format!("{base}Event");
                let frame = format!("{base}Frame");
                messages.insert(
                    event.clone(),
                    json!({
                        "name": event,
                        "title": title,
                        "summary": "An SSE event `record`: the record as its data, the reader's position as its id (send it back as Last-Event-ID to resume, on any portal). A last event `closed` says why the feed ended.",
                        "contentType": "application/json",
                        "payload": record,
                    }),
                );
                messages.insert(
                    frame.clone(),
                    json!({
                        "name": frame,
                        "title": title,
                        "summary": "A WebSocket text message: {\"type\": \"record\", \"id\": position, \"record\": ...}, and last {\"type\": \"closed\", \"reason\": ...}.",
                        "contentType": "application/json",
                        "payload": {
                            "type": "object",
                            "required": ["type"],
                            "properties": {
                                "type": {"enum": ["record", "closed"]},
                                "id": {"type": "string", "description": "the reader's position; send it as Last-Event-ID to resume"},
                                "record": record,
                                "reason": {"type": "string"},
                            },
                        },
                    }),
                );
                for (transport, server, message, binding) in [
                    (
                        "sse",
                        "freeport-sse",
                        &event,
                        json!({"http": {"method": "GET", "bindingVersion": HTTP_BINDING_VERSION}}),
                    ),
                    (
                        "ws",
                        "freeport-websocket",
                        &frame,
                        json!({"ws": {"method": "GET", "bindingVersion": WS_BINDING_VERSION}}),
                    ),
                ] {
                    let channel = format!("{transport}_{base}");
                    channels.insert(
                        channel.clone(),
                        json!({
                            "address": address,
                            "title": stream.name,
                            "description": description,
                            "servers": [{"$ref": format!("#/servers/{server}")}],
                            "messages": {message.clone(): {"$ref": format!("#/components/messages/{message}")}},
                        }),
                    );
                    let mut operation = json!({
                        "action": "receive",
                        "title": format!("Receive {} ({transport})", stream.name),
                        "channel": {"$ref": format!("#/channels/{channel}")},
                        "messages": [{"$ref": format!("#/channels/{channel}/messages/{message}")}],
                    });
                    if transport == "sse" {
                        operation["bindings"] = binding;
                    } else {
                        channels[&channel]["bindings"] = binding;
                    }
                    operations.insert(format!("receive_{channel}"), operation);
                }
            }
            (Some(_), None) => continue,
        }
    }
    json!({
        "asyncapi": "3.0.0",
        "id": format!("urn:freeport:partner:{org}"),
        "info": {
            "title": format!("Freeport streams for {org}"),
            "version": "1.0.0",
            "description": format!("Every stream organization {org} receives under an approved contract."),
        },
        "defaultContentType": "application/json",
        "servers": servers,
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "securitySchemes": {
                "clientCertificate": {
                    "type": "X509",
                    "description": "Mutual TLS with a client certificate issued to your organization.",
                },
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key of your organization, as `Authorization: Bearer <key>`.",
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_made_safe_and_the_first_bootstrap_is_the_host() {
        let stream = pb::Stream {
            name: "b2b.orders".into(),
            cluster: "eu.main".into(),
            topic: "orders".into(),
            value_schema_json: r#"{"type":"object"}"#.into(),
            ..Default::default()
        };
        let cluster = ClusterConfig::plaintext("k1:9092, k2:9092");
        let doc = stream_document(&stream, &cluster, Some(3));
        assert_eq!(doc["servers"]["eu_main"]["host"], "k1:9092");
        assert_eq!(doc["channels"]["b2b_orders"]["address"], "orders");
        assert_eq!(
            doc["channels"]["b2b_orders"]["bindings"]["kafka"]["partitions"],
            3
        );
        assert_eq!(
            doc["components"]["messages"]["b2b_ordersRecord"]["payload"]["type"],
            "object"
        );
    }
}
