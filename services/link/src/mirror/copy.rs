//! What each source record goes through on its way to the destination:
//! the floor (copied before?), the contract's terms (deliver, skip or dead
//! letter), the rate limit, provenance headers, and the producer.
//!
//! A value in the Confluent wire format (a zero byte and a schema id) is
//! reshaped as what it holds: decoded under the stream's schema with that
//! id (Avro, Protobuf or JSON), reshaped, and written under the schema the catalog
//! derived for the contract's terms, with that schema's id, so that the
//! partner's deserializer reads it ([`DeliveredSchemas`]).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::HashMap;

use freeport_common::kafka::{client_config, ensure_topic, send_queued};
use freeport_common::proto::catalog::v1 as pb;
use freeport_common::schema::codec::Codec;
use freeport_common::schema::wire;
use freeport_common::telemetry;
use freeport_common::terms::{Outcome, Reshaper};
use opentelemetry::trace::{SpanKind, TraceContextExt};
use opentelemetry::KeyValue;
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::Message;

use super::progress::{now_ms, Pending, Progress};
use super::Mirror;
use crate::error::MirrorError;
use crate::plan::MirrorSpec;
use crate::provenance::{dead_letter_topic, Floors, Origin, HEADER_DEAD_LETTER_REASON};

/// One run's copying state.
pub(super) struct Copier<'m> {
    mirror: &'m Mirror,
    floors: Floors,
    progress: Arc<Progress>,
    limit: Option<RateLimit>,
    /// To the source cluster, when the terms reshape records.
    dead_letters: Option<FutureProducer>,
    dead_letter_topic_ready: bool,
    spans: Option<MirrorSpans>,
    schemas: DeliveredSchemas,
}

/// For one source schema id: how its values are read, and the schema (and
/// id) the contract's reshaped values are written under; or why values
/// under it cannot be delivered.
type Delivery = Result<(Codec, u32, Codec), String>;

/// The schemas a contract delivers wire-format values under, asked of the
/// catalog once per source schema id.
pub(super) struct DeliveredSchemas {
    catalog: pb::catalog_service_client::CatalogServiceClient<tonic::transport::Channel>,
    contract_id: String,
    known: HashMap<u32, Delivery>,
}

impl DeliveredSchemas {
    async fn of(&mut self, source_id: u32) -> Result<&Delivery, MirrorError> {
        if !self.known.contains_key(&source_id) {
            let answer = self
                .catalog
                .delivered_schema(pb::DeliveredSchemaRequest {
                    contract_id: self.contract_id.clone(),
                    source_schema_id: source_id,
                })
                .await;
            let delivery = match answer {
                Ok(answer) => {
                    let answer = answer.into_inner();
                    let (Some(source), Some(delivered)) = (answer.source, answer.delivered) else {
                        return Err(MirrorError::Catalog("an answer without schemas".into()));
                    };
                    Codec::of(&source)
                        .and_then(|read| Ok((read, delivered.id, Codec::of(&delivered)?)))
                }
                // The id is not the stream's, or the terms cannot reshape
                // its schema: no value under it can be delivered.
                Err(status)
                    if matches!(
                        status.code(),
                        tonic::Code::NotFound | tonic::Code::InvalidArgument
                    ) =>
                {
                    Err(status.message().to_string())
                }
                Err(status) => return Err(MirrorError::Catalog(status.message().to_string())),
            };
            self.known.insert(source_id, delivery);
        }
        Ok(&self.known[&source_id])
    }

    /// What the partner receives of a wire-format value under `source_id`.
    async fn reshape(
        &mut self,
        reshaper: &Reshaper,
        source_id: u32,
        payload: &[u8],
    ) -> Result<Outcome, MirrorError> {
        let (read, delivered_id, write) = match self.of(source_id).await? {
            Ok(delivery) => delivery,
            Err(why) => {
                return Ok(Outcome::DeadLetter(format!(
                    "value under schema id {source_id}: {why}"
                )))
            }
        };
        let value = match read.read(payload, false) {
            Ok(value) => value,
            Err(why) => {
                return Ok(Outcome::DeadLetter(format!(
                    "value is not what schema id {source_id} says: {why}"
                )))
            }
        };
        Ok(match reshaper.apply_value(value) {
            Ok(None) => Outcome::Skip,
            Err(why) => Outcome::DeadLetter(why),
            Ok(Some(reshaped)) => match write.write(&reshaped) {
                Ok(bytes) => Outcome::Deliver(Some(wire::join(*delivered_id, &bytes))),
                Err(why) => Outcome::DeadLetter(format!(
                    "the reshaped value does not fit schema id {delivered_id}: {why}"
                )),
            },
        })
    }
}

impl<'m> Copier<'m> {
    pub(super) fn new(
        mirror: &'m Mirror,
        floors: Floors,
        progress: Arc<Progress>,
    ) -> Result<Copier<'m>, MirrorError> {
        let dead_letters = match &mirror.reshaper {
            Some(_) => Some(
                client_config(&mirror.source, "freeport-link-dead-letters")
                    .set("enable.idempotence", "true")
                    .set("message.timeout.ms", "30000")
                    .create()?,
            ),
            None => None,
        };
        Ok(Copier {
            mirror,
            floors,
            progress,
            limit: mirror.rate.map(RateLimit::new),
            dead_letters,
            dead_letter_topic_ready: false,
            spans: MirrorSpans::new(&mirror.spec),
            schemas: DeliveredSchemas {
                catalog: mirror.catalog.clone(),
                contract_id: mirror.spec.contract_id.clone(),
                known: HashMap::new(),
            },
        })
    }

    /// One source record: skipped (copied before, or filtered out), sent
    /// to the dead-letter topic, or queued for the destination, in which
    /// case its delivery comes back to be awaited.
    pub(super) async fn copy(
        &mut self,
        producer: &FutureProducer,
        message: &BorrowedMessage<'_>,
    ) -> Result<Option<(DeliveryFuture, Pending)>, MirrorError> {
        if self
            .floors
            .copied_before(message.partition(), message.offset())
        {
            return Ok(None); // mirrored before the restart
        }
        self.progress
            .consumed(message.partition(), message.offset());
        let payload = match &self.mirror.reshaper {
            None => None,
            Some(reshaper) => match match message.payload().and_then(wire::split) {
                Some((id, payload)) => self.schemas.reshape(reshaper, id, payload).await?,
                None => reshaper.apply(message.payload()),
            } {
                Outcome::Deliver(payload) => Some(payload),
                // Filtered out. Its offset is re-read after a restart and
                // filtered again: nothing reaches the partner twice.
                Outcome::Skip => return Ok(None),
                Outcome::DeadLetter(reason) => {
                    self.dead_letter(message, &reason).await?;
                    return Ok(None);
                }
            },
        };
        if let Some(limit) = self.limit.as_mut() {
            limit.acquire().await;
        }
        // The value as it will be written: reshaped, or as produced.
        let value: Option<&[u8]> = match &payload {
            Some(reshaped) => reshaped.as_deref(),
            None => message.payload(),
        };
        let pending = Pending {
            partition: message.partition(),
            source_offset: message.offset(),
            timestamp_ms: message.timestamp().to_millis().unwrap_or_else(now_ms),
            bytes: (message.key().map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len)) as u64,
            mirroring: self.spans.as_ref().map(|spans| spans.start(message)),
        };
        let delivery = self
            .forward(producer, message, value, pending.mirroring.as_ref())
            .await?;
        Ok(Some((delivery, pending)))
    }

    /// The record as it came, with provenance and the reason, to the
    /// contract's dead-letter topic on the source cluster. Waits for the
    /// broker: a dead letter is never lost silently.
    async fn dead_letter(
        &mut self,
        message: &BorrowedMessage<'_>,
        reason: &str,
    ) -> Result<(), MirrorError> {
        let Some(producer) = &self.dead_letters else {
            return Ok(());
        };
        let spec = &self.mirror.spec;
        let topic = dead_letter_topic(&spec.contract_id);
        if !self.dead_letter_topic_ready {
            ensure_topic(&self.mirror.source, &topic, 1).await?;
            self.dead_letter_topic_ready = true;
        }
        tracing::warn!(contract = %spec.contract_id, partition = message.partition(), offset = message.offset(), %reason, "record to the dead-letter topic");
        let headers = provenance(spec, message, None).insert(Header {
            key: HEADER_DEAD_LETTER_REASON,
            value: Some(reason),
        });
        let mut record = FutureRecord::<[u8], [u8]>::to(&topic).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        producer
            .send(record, Duration::from_secs(30))
            .await
            .map(|_| ())
            .map_err(|(e, _)| MirrorError::Kafka(e))
    }

    /// Queues one record for the destination: same partition, key, value
    /// (`value`, reshaped or as produced), headers and timestamp, plus
    /// provenance.
    async fn forward(
        &self,
        producer: &FutureProducer,
        message: &BorrowedMessage<'_>,
        value: Option<&[u8]>,
        trace: Option<&opentelemetry::Context>,
    ) -> Result<DeliveryFuture, MirrorError> {
        let spec = &self.mirror.spec;
        let mut record = FutureRecord::<[u8], [u8]>::to(&spec.destination_topic)
            .partition(message.partition())
            .headers(provenance(spec, message, trace));
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(value) = value {
            record = record.payload(value);
        }
        if let Some(ms) = message.timestamp().to_millis() {
            record = record.timestamp(ms);
        }
        Ok(send_queued(producer, record, None).await?)
    }
}

/// The record's own headers followed by the provenance headers. With
/// `trace` (the record's `mirror` span), the copy carries that span's
/// context instead of the trace context the record came with.
fn provenance(
    spec: &MirrorSpec,
    message: &BorrowedMessage<'_>,
    trace: Option<&opentelemetry::Context>,
) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new();
    if let Some(original) = message.headers() {
        for header in original.iter() {
            if trace.is_none() || !telemetry::is_trace_header(header.key) {
                headers = headers.insert(header);
            }
        }
    }
    for (key, value) in trace.map(telemetry::trace_headers).unwrap_or_default() {
        headers = headers.insert(Header {
            key,
            value: Some(value.as_str()),
        });
    }
    let origin = Origin {
        cluster: &spec.source_cluster,
        topic: &spec.source_topic,
        contract_id: &spec.contract_id,
    };
    let (partition, offset) = (
        message.partition().to_string(),
        message.offset().to_string(),
    );
    for (key, value) in origin.headers(&partition, &offset) {
        headers = headers.insert(Header {
            key,
            value: Some(value),
        });
    }
    headers
}

/// At most `per_second` records in each one-second window.
struct RateLimit {
    per_second: u32,
    window: Instant,
    used: u32,
}

impl RateLimit {
    fn new(per_second: NonZeroU32) -> RateLimit {
        RateLimit {
            per_second: per_second.get(),
            window: Instant::now(),
            used: 0,
        }
    }

    async fn acquire(&mut self) {
        if self.window.elapsed() >= Duration::from_secs(1) {
            self.window = Instant::now();
            self.used = 0;
        }
        if self.used >= self.per_second {
            tokio::time::sleep(Duration::from_secs(1).saturating_sub(self.window.elapsed())).await;
            self.window = Instant::now();
            self.used = 0;
        }
        self.used += 1;
    }
}

/// What the `mirror` spans of one contract share, built once per run: a
/// span per record copied must cost little.
pub(super) struct MirrorSpans {
    name: String,
    shared: Vec<KeyValue>,
}

impl MirrorSpans {
    /// `None` when tracing is off.
    fn new(spec: &MirrorSpec) -> Option<MirrorSpans> {
        if !telemetry::enabled() {
            return None;
        }
        let text = |value: &str| opentelemetry::Value::from(Arc::<str>::from(value));
        Some(MirrorSpans {
            name: format!("mirror {}", spec.source_topic),
            shared: vec![
                KeyValue::new("messaging.system", "kafka"),
                KeyValue::new("messaging.operation.type", "process"),
                KeyValue::new("messaging.destination.name", text(&spec.source_topic)),
                KeyValue::new("freeport.contract.id", text(&spec.contract_id)),
                KeyValue::new("freeport.source.cluster", text(&spec.source_cluster)),
                KeyValue::new(
                    "freeport.destination.cluster",
                    text(&spec.destination_cluster),
                ),
                KeyValue::new("freeport.destination.topic", text(&spec.destination_topic)),
            ],
        })
    }

    /// The span of copying `message`, continuing the trace its headers
    /// carry.
    fn start(&self, message: &BorrowedMessage<'_>) -> opentelemetry::Context {
        let parent = telemetry::record_context(message.headers());
        let attributes = || {
            let mut attributes = Vec::with_capacity(self.shared.len() + 2);
            attributes.extend_from_slice(&self.shared);
            attributes.push(KeyValue::new(
                "messaging.destination.partition.id",
                message.partition().to_string(),
            ));
            attributes.push(KeyValue::new("messaging.kafka.offset", message.offset()));
            attributes
        };
        let span = telemetry::span(self.name.clone(), SpanKind::Consumer, &parent, attributes);
        parent.with_span(span)
    }
}
