//! Push consumption: a partner reads a stream's records over HTTP as they
//! arrive, reshaped by its contract's terms, for as long as the contract is
//! active.
//!
//! Nothing about a reader is kept on the server: every event carries the
//! reader's whole [`Position`] (the next offset of every partition) as its
//! id, so a reconnect with `Last-Event-ID` resumes exactly where the last
//! event left off, on any portal instance.
//!
//! Tracing: each record delivered is a `deliver` span continuing the trace
//! its headers carry (the produce call's, or the link's for a mirrored
//! copy), ended once the transport has taken the event.
//!
//! Revocation: the portal's [`crate::access::AccessView`] follows the
//! catalog's Watch stream and broadcasts every contract change and
//! withdrawn credential; an open feed whose contract is no longer active,
//! or whose reader's credential was withdrawn or expired, ends at once,
//! with a `closed` event saying why.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use freeport_common::contract::{ContractState, ContractTerms};
use freeport_common::error::ErrorCode;
use freeport_common::kafka::{client_config, ends_if_past, read_starts, Resume};
use freeport_common::names::ClusterName;
use freeport_common::proto::catalog::v1 as pb;
use freeport_common::telemetry;
use freeport_common::terms::Reshaper;
use futures::Stream;
use opentelemetry::trace::{SpanKind, TraceContextExt};
use opentelemetry::KeyValue;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::{json, Value};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::access::AccessView;
use crate::credentials::{Change, Credential, Crl};
use crate::error::{ApiError, ApiResult};
use crate::extract::Caller;
use crate::limits::{ContractLimits, FeedPermit};
use crate::validate::Shown;
use crate::AppState;

/// Contract changes kept for feeds that fall behind; one that falls further
/// looks its contract up in the view instead.
pub const CONTRACT_CHANGES: usize = 1024;
/// How often an open feed looks its contract up in the view even without a
/// change: its end time may have passed while the catalog is away.
const RECHECK: Duration = Duration::from_secs(5);
/// Longest an id (and so `Last-Event-ID`) may be.
const MAX_POSITION_CHARS: usize = 16 * 1024;

/// The next offset to read in every partition: `0:12,1:7,2:0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position(pub BTreeMap<i32, i64>);

impl Position {
    pub fn parse(text: &str, partitions: usize) -> Result<Position, String> {
        if text.len() > MAX_POSITION_CHARS {
            return Err(format!("longer than {MAX_POSITION_CHARS} characters"));
        }
        let mut next = BTreeMap::new();
        if text.is_empty() {
            // No id yet, as an SSE client that has seen no event says it.
            return Ok(Position(next));
        }
        for part in text.split(',') {
            if part.trim().is_empty() {
                return Err(format!("{text:?} has an empty entry"));
            }
            let parsed = part.split_once(':').and_then(|(p, o)| {
                Some((p.trim().parse::<i32>().ok()?, o.trim().parse::<i64>().ok()?))
            });
            let Some((partition, offset)) = parsed else {
                return Err(format!("{part:?} is not <partition>:<offset>"));
            };
            if partition < 0 || usize::try_from(partition).unwrap_or(usize::MAX) >= partitions {
                return Err(format!(
                    "partition {partition} does not exist ({partitions} partitions)"
                ));
            }
            if offset < 0 {
                return Err(format!(
                    "offset {offset} of partition {partition} is negative"
                ));
            }
            if next.insert(partition, offset).is_some() {
                return Err(format!("partition {partition} appears twice"));
            }
        }
        Ok(Position(next))
    }

    /// The first partition this position is past the end of, given each
    /// partition's (first, end) offsets; described for the caller.
    pub fn past(&self, ends: &HashMap<i32, (i64, i64)>) -> Option<String> {
        self.0.iter().find_map(|(partition, &offset)| {
            let &(_, end) = ends.get(partition)?;
            (offset > end).then(|| {
                format!(
                    "offset {offset} of partition {partition} is past its end ({end}); reconnect without an id to start over"
                )
            })
        })
    }

    pub fn id(&self) -> String {
        self.0
            .iter()
            .map(|(p, o)| format!("{p}:{o}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Where a reader without a position starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    /// The oldest record the cluster still holds.
    Beginning,
    /// Only records produced from now on.
    End,
}

/// What a feed yields.
#[derive(Debug)]
pub enum Item {
    /// A record, and the reader's position after it.
    Record { id: String, record: Value },
    /// The feed ends: why.
    Closed { ending: Ending, reason: String },
}

/// Why a feed ended, for transports that tell them apart (a WebSocket's
/// close code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The contract is no longer active: reconnecting will be refused.
    NotActive,
    /// The portal is shutting down: reconnect, to this or another instance.
    Shutdown,
    /// Reading the stream failed: reconnect.
    Failed,
    /// The credential the reader showed was revoked or expired: reconnect
    /// with another.
    Withdrawn,
}

const SHUTTING_DOWN: &str = "the portal is shutting down; reconnect with Last-Event-ID";

pub(crate) fn is_active(contract: &pb::Contract) -> bool {
    ContractState::from_pb(contract.state) == Some(ContractState::Active)
}

fn state_name(contract: &pb::Contract) -> String {
    crate::rest::contract_state_name(contract.state)
}

/// A reader's open feed, ready to stream.
pub struct Feed {
    contract: pb::Contract,
    consumer: StreamConsumer,
    position: Position,
    reshaper: Option<Reshaper>,
    /// Values in the Confluent wire format, as JSON.
    decoder: crate::validate::Decoder,
    changes: broadcast::Receiver<Change>,
    view: Arc<AccessView>,
    shutdown: CancellationToken,
    limits: Arc<ContractLimits>,
    /// Frees the contract's place for a feed when the feed ends.
    permit: FeedPermit,
    /// What the reader authenticated with: the feed closes when it is
    /// withdrawn, or at its expiry.
    credential: Credential,
    expires_at_ms: Option<i64>,
    crl: Crl,
}

/// Opens `stream` for `org`: its active contract, the owner's topic from
/// `position` (or `from` for the partitions it does not name).
pub async fn open(
    state: &AppState,
    caller: &Caller,
    name: &str,
    last_event_id: Option<&str>,
    from: From,
) -> ApiResult<Feed> {
    // Subscribe before looking, so a change right after the check is seen.
    let changes = state.changes();
    let org = caller.require_org("read a stream's records")?;
    // A feed follows a contract (its terms, its revocation, its limits):
    // the owner reads its own topic from its cluster.
    let (stream, contract) = state.view().feed_stream(org, name).await?;
    let contract = (*contract).clone();
    state.limits().request(&contract.id)?;
    let permit = state.limits().open_feed(&contract.id)?;
    let reshaper = reshaper_for(state, &contract)?;

    let cluster_name = ClusterName::parse(stream.cluster.clone())
        .map_err(|e| ApiError::internal("stream names an invalid cluster", e))?;
    let cluster = state.cluster(&cluster_name)?;
    let partitions = state
        .partitions(&cluster_name, &stream.topic)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::TopicNotFound,
                format!(
                    "the stream's topic {:?} does not exist on its cluster",
                    stream.topic
                ),
            )
        })?;
    let named = match last_event_id {
        Some(text) => Position::parse(text, partitions)
            .map_err(|e| ApiError::invalid(format!("Last-Event-ID: {e}")))?,
        None => Position(BTreeMap::new()),
    };
    if !named.0.is_empty() {
        // A position past a partition's end names records that were never
        // written: resuming there would wait for them silently. Only a
        // position beyond the high watermark needs the last batch read.
        let positions = named.0.iter().map(|(&p, &o)| (p, o)).collect();
        let ends = ends_if_past(cluster, &stream.topic, positions)
            .await
            .map_err(|e| ApiError::kafka("cannot read the partitions' ends", e))?;
        if let Some(past) = named.past(&ends) {
            return Err(ApiError::invalid(format!("Last-Event-ID: {past}")));
        }
    }

    let consumer: StreamConsumer = client_config(cluster, "freeport-portal-push")
        .set("group.id", "freeport-portal-push")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "50")
        .create()
        .map_err(|e| ApiError::kafka("cannot create a consumer", e))?;
    let wanted = (0..i32::try_from(partitions).unwrap_or(i32::MAX))
        .map(|partition| {
            let resume = match (named.0.get(&partition), from) {
                (Some(&offset), _) => Resume::At(offset),
                (None, From::Beginning) => Resume::At(0),
                (None, From::End) => Resume::End,
            };
            (partition, resume)
        })
        .collect();
    // The broker may skip the rest of a batch when asked for an offset
    // inside it: fetch from where `read_starts` says, drop what comes before.
    let starts = read_starts(cluster, &stream.topic, wanted)
        .await
        .map_err(|e| ApiError::kafka("cannot find where to start reading", e))?;
    let mut assignment = TopicPartitionList::new();
    let mut next = BTreeMap::new();
    for (&partition, start) in &starts {
        assignment
            .add_partition_offset(&stream.topic, partition, Offset::Offset(start.fetch_from))
            .map_err(|e| ApiError::kafka("cannot assign partitions", e))?;
        next.insert(partition, start.next);
    }
    consumer
        .assign(&assignment)
        .map_err(|e| ApiError::kafka("cannot assign partitions", e))?;
    Ok(Feed {
        contract,
        consumer,
        position: Position(next),
        reshaper,
        decoder: crate::validate::Decoder::new(
            state.view().clone(),
            state.record_schemas().clone(),
        ),
        changes,
        view: state.view().clone(),
        shutdown: state.shutdown().clone(),
        limits: state.limits().clone(),
        permit,
        credential: caller.1.clone(),
        expires_at_ms: (caller.0.expires_at_ms != 0).then_some(caller.0.expires_at_ms),
        crl: state.crl().clone(),
    })
}

/// What reshapes records read under `contract`; `None` when its terms
/// change nothing.
pub(crate) fn reshaper_for(
    state: &AppState,
    contract: &pb::Contract,
) -> ApiResult<Option<Reshaper>> {
    ContractTerms::from_pb(contract.terms.as_ref())
        .and_then(|terms| Reshaper::new(&terms, state.hash_key()))
        .map_err(|refusal| {
            ApiError::new(
                ErrorCode::Unavailable,
                format!("cannot apply the contract's terms here: {refusal}"),
            )
        })
}

impl Feed {
    /// The contract the feed reads under.
    pub fn contract_id(&self) -> &str {
        &self.contract.id
    }

    /// The feed as a stream of items, for `transport` (`sse`,
    /// `websocket`); ends after a [`Item::Closed`].
    pub fn into_stream(self, transport: &'static str) -> impl Stream<Item = Item> + Send {
        let Feed {
            contract,
            consumer,
            mut position,
            reshaper,
            decoder,
            mut changes,
            view,
            shutdown,
            limits,
            permit,
            credential,
            expires_at_ms,
            crl,
        } = self;
        let expiry = expires_at_ms.map(|end| {
            let left = u64::try_from(end - freeport_common::now_ms()).unwrap_or(0);
            tokio::time::Instant::now() + Duration::from_millis(left)
        });
        let per_second = contract
            .terms
            .as_ref()
            .map_or(0, |t| t.max_records_per_second);
        async_stream::stream! {
            // Held for as long as the stream lives.
            let _permit = permit;
            let mut recheck = tokio::time::interval(RECHECK);
            recheck.tick().await;
            loop {
                let ended: Option<(Ending, String)> = tokio::select! {
                    _ = shutdown.cancelled() => Some((Ending::Shutdown, SHUTTING_DOWN.into())),
                    _ = async {
                        match expiry {
                            Some(at) => tokio::time::sleep_until(at).await,
                            None => std::future::pending().await,
                        }
                    } => Some((Ending::Withdrawn, format!("{} expired", credential.describe()))),
                    change = changes.recv() => match change {
                        Ok(Change::Contract(changed)) if changed.id == contract.id && !is_active(&changed) => {
                            Some((Ending::NotActive, format!("contract {} is {}", contract.id, state_name(&changed))))
                        }
                        Ok(change) if change.withdraws(&credential, &crl) => {
                            Some((Ending::Withdrawn, format!("{} was revoked", credential.describe())))
                        }
                        Ok(_) => None,
                        Err(broadcast::error::RecvError::Lagged(_)) => still_active(&view, &contract.id),
                        Err(broadcast::error::RecvError::Closed) => Some((Ending::Shutdown, SHUTTING_DOWN.into())),
                    },
                    _ = recheck.tick() => still_active(&view, &contract.id),
                    message = consumer.recv() => match message {
                        Err(e) => Some((Ending::Failed, format!("reading the stream failed: {e}; reconnect with Last-Event-ID"))),
                        Ok(message) => {
                            let (partition, offset) = (message.partition(), message.offset());
                            let wanted = position.0.get(&partition).copied().unwrap_or(0);
                            if offset < wanted {
                                continue; // before the reader's position
                            }
                            position.0.insert(partition, offset + 1);
                            let value = shown(&message, &decoder, reshaper.as_ref());
                            if let Some(value) = value {
                                if per_second > 0 {
                                    limits.pace(&contract.id, per_second).await;
                                }
                                let delivering = deliver_span(&message, &contract, transport);
                                yield Item::Record { id: position.id(), record: record_json(&message, &decoder, value) };
                                // Asked for the next item: the transport has this one.
                                if let Some(cx) = &delivering {
                                    telemetry::end(cx, None);
                                }
                            }
                            None
                        }
                    },
                };
                if let Some((ending, reason)) = ended {
                    yield Item::Closed { ending, reason };
                    return;
                }
            }
        }
    }
}

/// The span of delivering `message` to the contract's consumer over
/// `transport`, continuing the trace in the record's headers; `None` when
/// tracing is off.
fn deliver_span(
    message: &BorrowedMessage<'_>,
    contract: &pb::Contract,
    transport: &'static str,
) -> Option<opentelemetry::Context> {
    if !telemetry::enabled() {
        return None;
    }
    let parent = telemetry::record_context(message.headers());
    let span = telemetry::span(
        format!("deliver {}", message.topic()),
        SpanKind::Consumer,
        &parent,
        || {
            vec![
                KeyValue::new("messaging.system", "kafka"),
                KeyValue::new("messaging.operation.type", "process"),
                KeyValue::new("messaging.destination.name", message.topic().to_string()),
                KeyValue::new(
                    "messaging.destination.partition.id",
                    message.partition().to_string(),
                ),
                KeyValue::new("messaging.kafka.offset", message.offset()),
                KeyValue::new("freeport.contract.id", contract.id.clone()),
                KeyValue::new("freeport.consumer", contract.consumer.clone()),
                KeyValue::new("freeport.transport", transport),
            ]
        },
    );
    Some(parent.with_span(span))
}

/// `None` while the contract is active in the view; why not otherwise.
fn still_active(view: &AccessView, id: &str) -> Option<(Ending, String)> {
    view.inactive_reason(id)
        .map(|reason| (Ending::NotActive, reason))
}

/// What a push reader gets of `message`'s value: a value in the Confluent
/// wire format as the JSON it holds (so an HTTP reader of an Avro stream
/// reads JSON), reshaped by the terms; `None` when the terms leave it out
/// or cannot be applied to it.
fn shown(
    message: &BorrowedMessage<'_>,
    decoder: &crate::validate::Decoder,
    reshaper: Option<&Reshaper>,
) -> Option<Shown> {
    let payload = message.payload();
    match reshaper {
        Some(reshaper) => crate::validate::under_terms(payload, reshaper, Some(decoder)),
        None => Some(match payload.and_then(|b| decoder.plain(b)) {
            Some(Ok(value)) => Shown::Json(value),
            _ => Shown::Bytes(payload.map(<[u8]>::to_vec)),
        }),
    }
}

/// Bytes as JSON when they are JSON (or, with `text`, as a string when
/// they are UTF-8), else as base64 under `<name>_base64`.
fn put_bytes(
    record: &mut serde_json::Map<String, Value>,
    name: &str,
    bytes: Option<&[u8]>,
    text: bool,
) {
    let b64 = || base64::engine::general_purpose::STANDARD.encode(bytes.unwrap_or_default());
    let parsed = match bytes {
        None => Some(Value::Null),
        Some(b) => serde_json::from_slice(b).ok().or_else(|| {
            text.then(|| {
                std::str::from_utf8(b)
                    .ok()
                    .map(|s| Value::String(s.to_string()))
            })
            .flatten()
        }),
    };
    match parsed {
        Some(value) => record.insert(name.to_string(), value),
        None => record.insert(format!("{name}_base64"), Value::String(b64())),
    };
}

/// A record as a push reader sees it: the key as JSON (decoded when it is
/// in the Confluent wire format) or else text, the value as JSON (either
/// under `key_base64` / `value_base64` when it is neither), headers as
/// `{name, value: <base64>}` like the produce API takes them.
fn record_json(
    message: &BorrowedMessage<'_>,
    decoder: &crate::validate::Decoder,
    value: Shown,
) -> Value {
    let mut record = serde_json::Map::new();
    record.insert("partition".into(), json!(message.partition()));
    record.insert("offset".into(), json!(message.offset()));
    record.insert("timestamp".into(), json!(message.timestamp().to_millis()));
    match message.key().and_then(|k| decoder.plain(k)) {
        Some(Ok(key)) => {
            record.insert("key".into(), key);
        }
        _ => put_bytes(&mut record, "key", message.key(), true),
    }
    match value {
        Shown::Bytes(bytes) => put_bytes(&mut record, "value", bytes.as_deref(), false),
        Shown::Json(value) => {
            record.insert("value".into(), value);
        }
    }
    record.insert(
        "headers".into(),
        json!(crate::wire::Header::all_of(message)),
    );
    Value::Object(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_and_bad_ones_say_why() {
        let position = Position::parse("0:12,2:0,1:7", 3).unwrap();
        assert_eq!(position.id(), "0:12,1:7,2:0");
        assert_eq!(Position::parse("", 3).unwrap(), Position(BTreeMap::new()));
        for (bad, why) in [
            ("0:1,3:4", "does not exist"),
            ("0:-1", "negative"),
            ("0:1,0:2", "twice"),
            ("zero:1", "is not"),
            ("0-1", "is not"),
        ] {
            let error = Position::parse(bad, 3).unwrap_err();
            assert!(error.contains(why), "{bad}: {error}");
        }
        assert!(Position::parse(&"0:1,".repeat(10_000), 3).is_err());
        for empty in [",,,", "0:1,", ",0:1", "0:1,,1:2", " "] {
            let error = Position::parse(empty, 3).unwrap_err();
            assert!(error.contains("empty entry"), "{empty:?}: {error}");
        }
    }

    #[test]
    fn a_position_past_a_partitions_end_is_named() {
        let ends = HashMap::from([(0, (0, 10)), (1, (5, 5))]);
        let within = Position::parse("0:10,1:5", 2).unwrap();
        assert_eq!(within.past(&ends), None);
        let past = Position::parse("0:3,1:9223372036854775807", 2).unwrap();
        let why = past.past(&ends).unwrap();
        assert!(why.contains("partition 1") && why.contains("(5)"), "{why}");
    }
}
