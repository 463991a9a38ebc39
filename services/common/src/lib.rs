//! Code every Freeport service shares.
//!
//! - [`proto`]: the gRPC types generated from `proto/freeport/**` at build time.
//! - [`error`]: the one table of stable error codes, mapped to both HTTP
//!   statuses and gRPC codes, so a caller sees the same code whichever service
//!   refused it.
//! - [`names`]: validated names (streams, organizations, clusters, topics),
//!   parsed once at the edge.
//! - [`tls`]: mutual TLS between the services, and the development CA that
//!   `freeport up` generates.
//! - [`kafka`]: librdkafka client settings and topic helpers.
//! - [`terms`]: a contract's terms applied to records, by the link when it
//!   mirrors and by the portal when it pushes records to a partner.
//! - [`ownership`]: whose each cluster is, and the topics the hub keeps for
//!   itself: where streams may live and contracts may deliver.
//! - [`config`]: loading TOML with `FREEPORT_` environment overrides.
//! - [`telemetry`]: logging set-up.
//! - [`http_server`]: the one way every HTTP listener is served (HTTPS with
//!   the client certificate handed to handlers, or plain HTTP in
//!   development), with connection limits (header read and idle timeouts, a
//!   cap on open connections) so no client can hold a listener hostage.
//! - [`metrics`]: instruments read by Prometheus, per-route HTTP and gRPC
//!   metrics, certificate expiry.
//! - [`ops`]: the operations listener (`/metrics`, `/livez`, `/readyz`)
//!   and the readiness probes behind it.

pub mod authz;
pub mod config;
pub mod contract;
pub mod error;
pub mod http_server;
pub mod json;
pub mod kafka;
pub mod metrics;
pub mod names;
pub mod ops;
pub mod ownership;
pub mod schema;
pub mod telemetry;
pub mod terms;
pub mod tls;

/// Generated gRPC types and stubs.
pub mod proto {
    /// Every Freeport proto file, encoded, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/freeport_descriptor.bin"));

    pub mod catalog {
        pub mod v1 {
            #![allow(clippy::all, clippy::pedantic, missing_docs)]
            tonic::include_proto!("freeport.catalog.v1");

            /// A stored format as the schema module names it (JSON Schema
            /// when unspecified, as a stream registered without one is).
            pub fn schema_format(value: i32) -> crate::schema::SchemaFormat {
                match SchemaFormat::try_from(value) {
                    Ok(SchemaFormat::Avro) => crate::schema::SchemaFormat::Avro,
                    Ok(SchemaFormat::Protobuf) => crate::schema::SchemaFormat::Protobuf,
                    _ => crate::schema::SchemaFormat::JsonSchema,
                }
            }

            impl From<crate::schema::SchemaFormat> for SchemaFormat {
                fn from(format: crate::schema::SchemaFormat) -> SchemaFormat {
                    match format {
                        crate::schema::SchemaFormat::JsonSchema => SchemaFormat::JsonSchema,
                        crate::schema::SchemaFormat::Avro => SchemaFormat::Avro,
                        crate::schema::SchemaFormat::Protobuf => SchemaFormat::Protobuf,
                    }
                }
            }

            impl RecordPart {
                /// `value` or `key`, as subject names and messages say it.
                pub fn name(self) -> &'static str {
                    match self {
                        RecordPart::Value => "value",
                        RecordPart::Key => "key",
                    }
                }
            }

            impl SchemaVersion {
                /// The schemas this version depends on, parsed: what
                /// reading it needs besides itself.
                pub fn dependencies(&self) -> Result<Vec<crate::schema::Dependency>, String> {
                    self.dependencies
                        .iter()
                        .map(|d| {
                            let reference = d.reference.clone().unwrap_or_default();
                            let schema = serde_json::from_str(&d.schema_json).map_err(|e| {
                                format!(
                                    "schema id {}'s reference {:?} is not stored as JSON: {e}",
                                    self.id, reference.name
                                )
                            })?;
                            Ok(crate::schema::Dependency {
                                reference: reference.into(),
                                schema,
                            })
                        })
                        .collect()
                }
            }

            impl From<SchemaReference> for crate::schema::Reference {
                fn from(r: SchemaReference) -> crate::schema::Reference {
                    let part = match r.part() {
                        RecordPart::Value => crate::schema::RecordPart::Value,
                        RecordPart::Key => crate::schema::RecordPart::Key,
                    };
                    crate::schema::Reference {
                        name: r.name,
                        stream: r.stream,
                        part,
                        version: r.version,
                    }
                }
            }

            impl From<crate::schema::Reference> for SchemaReference {
                fn from(r: crate::schema::Reference) -> SchemaReference {
                    let part = match r.part {
                        crate::schema::RecordPart::Value => RecordPart::Value,
                        crate::schema::RecordPart::Key => RecordPart::Key,
                    };
                    SchemaReference {
                        name: r.name,
                        stream: r.stream,
                        part: part.into(),
                        version: r.version,
                    }
                }
            }

            impl Stream {
                /// `part`'s schema versions, oldest first.
                pub fn versions(&self, part: RecordPart) -> &[SchemaVersion] {
                    match part {
                        RecordPart::Value => &self.schema_versions,
                        RecordPart::Key => &self.key_schema_versions,
                    }
                }

                /// `part`'s latest version that is not soft-deleted.
                pub fn latest_live(&self, part: RecordPart) -> Option<&SchemaVersion> {
                    self.versions(part).iter().rev().find(|v| !v.deleted)
                }

                /// Every schema version the stream has, value and key, each
                /// with its part.
                pub fn all_versions(&self) -> impl Iterator<Item = (RecordPart, &SchemaVersion)> {
                    let values = self.schema_versions.iter().map(|v| (RecordPart::Value, v));
                    values.chain(
                        self.key_schema_versions
                            .iter()
                            .map(|v| (RecordPart::Key, v)),
                    )
                }
            }
        }
    }
}

/// Milliseconds since the Unix epoch, as every timestamp in the catalog.
pub fn now_ms() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
