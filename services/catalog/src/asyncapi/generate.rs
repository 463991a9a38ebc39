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
/// cluster the records arrive on.
pub struct Delivery<'a> {
    pub contract: &'a pb::Contract,
    pub stream: &'a pb::Stream,
    pub destination: &'a ClusterConfig,
}

/// One document for a partner: every stream it receives, each as a channel
/// on its own (destination) cluster, reached with its client certificate.
pub fn partner_document(org: &str, deliveries: &[Delivery<'_>]) -> Value {
    let mut servers = Map::new();
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    for delivery in deliveries {
        let contract = delivery.contract;
        let stream = delivery.stream;
        let Some(destination) = contract.destination.as_ref() else {
            continue;
        };
        let server = key(&destination.cluster);
        servers.entry(server.clone()).or_insert_with(|| {
            json!({
                "host": host(delivery.destination),
                "protocol": "kafka",
                "description": format!("Kafka cluster {} (yours), where Freeport delivers", destination.cluster),
                "security": [{"$ref": "#/components/securitySchemes/clientCertificate"}],
                "bindings": {"kafka": {"bindingVersion": KAFKA_BINDING_VERSION}},
            })
        });
        let channel = key(&format!("{}_{}", destination.cluster, destination.topic));
        let message = format!("{}Record", key(&stream.name));
        let schema: Value =
            serde_json::from_str(&stream.value_schema_json).unwrap_or_else(|_| json!({}));
        let dropped = contract
            .terms
            .as_ref()
            .map(|t| t.drop_fields.clone())
            .unwrap_or_default();
        // The schema of what arrives: as the contract's terms reshape it
        // (the one home of that rule, which the link's delivered schemas
        // come from too).
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
            .and_then(|terms| {
                freeport_common::schema::reshape::reshaped_schema(format, source, &terms)
            })
            .unwrap_or_else(|_| schema.clone());
        // One document: what the schema refers to is written into it.
        let schema = freeport_common::schema::self_contained(
            format,
            Source {
                schema: &schema,
                dependencies: &dependencies,
            },
        );
        let payload = payload(format, schema);
        messages.insert(
            message.clone(),
            json!({
                "name": message,
                "title": if stream.title.is_empty() { &stream.name } else { &stream.title },
                "contentType": "application/json",
                "payload": payload,
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
        let mut description = format!(
            "Stream {} of {}, delivered under contract {}.",
            stream.name, stream.owner, contract.id
        );
        if !dropped.is_empty() {
            description.push_str(&format!(" Dropped fields: {}.", dropped.join(", ")));
        }
        if let Some(terms) = &contract.terms {
            if !terms.mask_fields.is_empty() {
                description.push_str(&format!(
                    " Masked fields: {}.",
                    terms.mask_fields.join(", ")
                ));
            }
            if !terms.hash_fields.is_empty() {
                description.push_str(&format!(
                    " Hashed fields: {}.",
                    terms.hash_fields.join(", ")
                ));
            }
        }
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
