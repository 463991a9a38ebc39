//! One consumer instance: its Kafka consumer, what it reads and how, and
//! the REST Proxy calls on it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine;
use freeport_common::config::ClusterConfig;
use freeport_common::error::ErrorCode;
use freeport_common::kafka::{client_config, read_starts_blocking, Resume, METADATA_TIMEOUT};
use freeport_common::names::ClusterName;
use freeport_common::terms::Reshaper;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::topic_partition_list::TopicPartitionListElem;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;
use serde_json::Value;

use crate::credentials::Credential;
use crate::error::{ApiError, ApiResult};
use crate::validate::Shown;
use crate::wire::{Format, Header};

/// An instance's settings, from the create request.
#[derive(Debug, Clone)]
pub struct Settings {
    pub format: Format,
    /// `earliest` or `latest`: where a partition without a committed
    /// offset starts.
    pub auto_offset_reset: &'static str,
    pub auto_commit: bool,
    /// How long a records request waits for records.
    pub request_timeout: Duration,
    /// Most bytes (keys and values) one records request returns.
    pub max_bytes: usize,
    /// How values in the Confluent wire format become JSON (the `avro` and
    /// `jsonschema` formats show them so; terms reshape them so).
    pub decoder: Option<crate::validate::Decoder>,
}

/// A topic an instance reads, and how.
pub struct TopicRead {
    pub cluster: ClusterName,
    /// The contract it reads under (`None` for the owner's own topic).
    pub contract: Option<String>,
    pub reshaper: Option<Reshaper>,
}

/// What an instance reads: nothing yet, the partitions the group gives it
/// for some topics, or partitions it chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Idle,
    Subscribed(Vec<String>),
    Assigned(Vec<(String, i32)>),
}

/// Records before these offsets were asked to be skipped (the broker may
/// deliver them when a start falls inside a batch).
type Floors = Mutex<HashMap<(String, i32), i64>>;

/// Fixes where assigned partitions start: from a committed offset, at a
/// batch start that makes the broker skip nothing.
pub struct InstanceContext {
    cluster: ClusterConfig,
    floors: Floors,
}

impl ClientContext for InstanceContext {}

impl ConsumerContext for InstanceContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        let outcome = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let starts = self.starts(consumer, partitions);
                consumer.assign(&starts)
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => consumer.unassign(),
            other => {
                tracing::warn!(error = ?other, "consumer instance rebalance failed");
                consumer.unassign()
            }
        };
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "consumer instance could not take its partitions");
        }
    }
}

impl InstanceContext {
    fn floors(&self) -> std::sync::MutexGuard<'_, HashMap<(String, i32), i64>> {
        self.floors.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `partitions` with each committed offset replaced by where to fetch
    /// from; the offsets below each committed one become floors.
    fn starts(
        &self,
        consumer: &BaseConsumer<Self>,
        partitions: &TopicPartitionList,
    ) -> TopicPartitionList {
        let committed = match consumer.committed_offsets(partitions.clone(), METADATA_TIMEOUT) {
            Ok(committed) => committed,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read committed offsets; starting as the reset policy says");
                return partitions.clone();
            }
        };
        let mut wanted: BTreeMap<String, HashMap<i32, Resume>> = BTreeMap::new();
        for element in committed.elements() {
            if let Offset::Offset(next) = element.offset() {
                wanted
                    .entry(element.topic().to_string())
                    .or_default()
                    .insert(element.partition(), Resume::At(next));
            }
        }
        let mut starts = partitions.clone();
        let mut floors = self.floors();
        for element in partitions.elements() {
            floors.remove(&(element.topic().to_string(), element.partition()));
        }
        for (topic, wanted) in wanted {
            match read_starts_blocking(&self.cluster, &topic, wanted) {
                Ok(found) => {
                    for (partition, start) in found {
                        let set = starts.set_partition_offset(
                            &topic,
                            partition,
                            Offset::Offset(start.fetch_from),
                        );
                        if set.is_ok() {
                            floors.insert((topic.clone(), partition), start.next);
                        }
                    }
                }
                // Starting at the committed offsets themselves may skip part
                // of a batch on some brokers, but loses nothing on Kafka.
                Err(e) => tracing::warn!(%topic, error = %e, "cannot find where to resume"),
            }
        }
        starts
    }
}

/// One consumer instance.
pub struct Instance {
    pub org: String,
    pub group: String,
    pub name: String,
    pub settings: Settings,
    /// What its creator authenticated with: it closes when that is withdrawn.
    pub(super) credential: Credential,
    pub(super) consumer: Option<BaseConsumer<InstanceContext>>,
    /// The cluster its consumer reads from, once it has one.
    cluster: Option<ClusterName>,
    topics: BTreeMap<String, TopicRead>,
    mode: Mode,
    pub(super) last_used: Instant,
}

fn illegal(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::ConsumerIllegalState, message)
}

impl Instance {
    pub(super) fn new(
        org: &str,
        group: &str,
        name: &str,
        settings: Settings,
        credential: Credential,
    ) -> Instance {
        Instance {
            org: org.to_string(),
            group: group.to_string(),
            name: name.to_string(),
            settings,
            credential,
            consumer: None,
            cluster: None,
            topics: BTreeMap::new(),
            mode: Mode::Idle,
            last_used: Instant::now(),
        }
    }

    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    /// The contracts the instance reads under.
    pub fn contracts(&self) -> Vec<String> {
        self.topics
            .values()
            .filter_map(|t| t.contract.clone())
            .collect()
    }

    /// Takes `topics` as what the instance reads from now on, creating its
    /// Kafka consumer on their cluster the first time.
    fn take_topics(
        &mut self,
        topics: BTreeMap<String, TopicRead>,
        cluster: &ClusterConfig,
    ) -> ApiResult<&BaseConsumer<InstanceContext>> {
        let mut clusters = topics.values().map(|t| &t.cluster);
        let first = clusters.next().cloned();
        if clusters.any(|c| Some(c) != first.as_ref()) {
            return Err(illegal(
                "these topics live on different clusters; one consumer instance reads from one",
            ));
        }
        if let (Some(held), Some(wanted)) = (&self.cluster, &first) {
            if held != wanted {
                return Err(illegal(format!(
                    "this instance reads from cluster {:?}; create another for cluster {:?}",
                    held.as_str(),
                    wanted.as_str()
                )));
            }
        }
        if self.cluster.is_none() {
            self.cluster = first;
        }
        self.topics = topics;
        if self.consumer.is_none() {
            let group = format!("freeport.{}.{}", self.org, self.group);
            let context = InstanceContext {
                cluster: cluster.clone(),
                floors: Mutex::new(HashMap::new()),
            };
            let consumer = client_config(cluster, &format!("freeport-rest-{}", self.name))
                .set("group.id", group)
                .set("enable.auto.commit", self.settings.auto_commit.to_string())
                .set("auto.offset.reset", self.settings.auto_offset_reset)
                .set("allow.auto.create.topics", "false")
                .set("fetch.wait.max.ms", "100")
                .create_with_context(context)
                .map_err(|e| ApiError::kafka("cannot create a consumer", e))?;
            self.consumer = Some(consumer);
        }
        self.consumer
            .as_ref()
            .ok_or_else(|| ApiError::internal("consumer instance", "no consumer"))
    }

    fn consumer(&self) -> ApiResult<&BaseConsumer<InstanceContext>> {
        self.consumer.as_ref().ok_or_else(|| {
            illegal("the instance reads nothing yet: subscribe or assign partitions first")
        })
    }

    pub fn subscribe(
        &mut self,
        topics: BTreeMap<String, TopicRead>,
        cluster: &ClusterConfig,
    ) -> ApiResult<()> {
        if let Mode::Assigned(_) = self.mode {
            return Err(ApiError::new(
                ErrorCode::ConsumerAlreadySubscribed,
                "the instance has assigned partitions; delete them before subscribing",
            ));
        }
        let names: Vec<String> = topics.keys().cloned().collect();
        let consumer = self.take_topics(topics, cluster)?;
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        consumer
            .subscribe(&refs)
            .map_err(|e| ApiError::kafka("cannot subscribe", e))?;
        self.mode = Mode::Subscribed(names);
        Ok(())
    }

    pub fn assign(
        &mut self,
        partitions: Vec<(String, i32)>,
        topics: BTreeMap<String, TopicRead>,
        cluster: &ClusterConfig,
    ) -> ApiResult<()> {
        if let Mode::Subscribed(_) = self.mode {
            return Err(ApiError::new(
                ErrorCode::ConsumerAlreadySubscribed,
                "the instance is subscribed to topics; unsubscribe before assigning partitions",
            ));
        }
        let consumer = self.take_topics(topics, cluster)?;
        let mut list = TopicPartitionList::new();
        for (topic, partition) in &partitions {
            list.add_partition(topic, *partition);
        }
        let starts = consumer.context().starts(consumer, &list);
        consumer
            .assign(&starts)
            .map_err(|e| ApiError::kafka("cannot assign partitions", e))?;
        self.mode = Mode::Assigned(partitions);
        Ok(())
    }

    /// Stops reading: leaves the group's subscription or drops the
    /// assignment.
    pub fn unsubscribe(&mut self) -> ApiResult<()> {
        if let Some(consumer) = &self.consumer {
            match self.mode {
                Mode::Subscribed(_) => consumer.unsubscribe(),
                Mode::Assigned(_) => consumer
                    .unassign()
                    .map_err(|e| ApiError::kafka("cannot drop the assignment", e))?,
                Mode::Idle => {}
            }
        }
        self.mode = Mode::Idle;
        self.topics.clear();
        Ok(())
    }

    /// The partitions the instance holds now.
    pub fn assignment(&self) -> ApiResult<Vec<(String, i32)>> {
        let Some(consumer) = &self.consumer else {
            return Ok(vec![]);
        };
        let list = consumer
            .assignment()
            .map_err(|e| ApiError::kafka("cannot read the assignment", e))?;
        Ok(list
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect())
    }

    /// Moves each partition to an offset: the next record read from it is
    /// the one at that offset.
    pub fn seek(&mut self, offsets: Vec<(String, i32, i64)>) -> ApiResult<()> {
        let consumer = self.consumer()?;
        let held = self.assignment()?;
        let mut by_topic: BTreeMap<String, HashMap<i32, Resume>> = BTreeMap::new();
        for (topic, partition, offset) in &offsets {
            if !held.contains(&(topic.clone(), *partition)) {
                return Err(illegal(format!(
                    "partition {partition} of {topic:?} is not assigned to this instance"
                )));
            }
            by_topic
                .entry(topic.clone())
                .or_default()
                .insert(*partition, Resume::At(*offset));
        }
        let context = consumer.context();
        for (topic, wanted) in by_topic {
            let starts = read_starts_blocking(&context.cluster, &topic, wanted)
                .map_err(|e| ApiError::kafka("cannot find where to start", e))?;
            for (partition, start) in starts {
                consumer
                    .seek(
                        &topic,
                        partition,
                        Offset::Offset(start.fetch_from),
                        METADATA_TIMEOUT,
                    )
                    .map_err(|e| ApiError::kafka("cannot seek", e))?;
                context
                    .floors()
                    .insert((topic.clone(), partition), start.next);
            }
        }
        Ok(())
    }

    /// Moves each partition to its first or its next-to-come record.
    pub fn seek_to(&mut self, partitions: Vec<(String, i32)>, end: bool) -> ApiResult<()> {
        let consumer = self.consumer()?;
        let held = self.assignment()?;
        for (topic, partition) in partitions {
            if !held.contains(&(topic.clone(), partition)) {
                return Err(illegal(format!(
                    "partition {partition} of {topic:?} is not assigned to this instance"
                )));
            }
            let offset = if end { Offset::End } else { Offset::Beginning };
            consumer
                .seek(&topic, partition, offset, METADATA_TIMEOUT)
                .map_err(|e| ApiError::kafka("cannot seek", e))?;
            consumer.context().floors().remove(&(topic, partition));
        }
        Ok(())
    }

    /// Records that arrive within the request timeout (returning as soon as
    /// some have arrived and no more are ready), up to `max_bytes` and
    /// `max_records`.
    pub fn records(
        &mut self,
        timeout: Duration,
        max_bytes: usize,
        max_records: usize,
    ) -> ApiResult<Vec<ConsumerRecord>> {
        let Some(consumer) = &self.consumer else {
            return Ok(vec![]);
        };
        let deadline = Instant::now() + timeout;
        let mut records = Vec::new();
        let mut bytes = 0;
        while bytes < max_bytes && records.len() < max_records {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let wait = if records.is_empty() {
                deadline - now
            } else {
                Duration::from_millis(10)
            };
            let message = match consumer.poll(wait.min(Duration::from_millis(200))) {
                None if records.is_empty() => continue,
                None => break,
                Some(Err(KafkaError::PartitionEOF(_))) => continue,
                Some(Err(e)) => return Err(ApiError::kafka("reading records failed", e)),
                Some(Ok(message)) => message,
            };
            let floor = consumer
                .context()
                .floors()
                .get(&(message.topic().to_string(), message.partition()))
                .copied();
            if floor.is_some_and(|floor| message.offset() < floor) {
                continue;
            }
            let reshaper = self
                .topics
                .get(message.topic())
                .and_then(|t| t.reshaper.as_ref());
            let Some(value) = reshaped(&message, reshaper, self.settings.decoder.as_ref()) else {
                continue;
            };
            bytes += message.key().map_or(0, <[u8]>::len) + value.size();
            records.push(ConsumerRecord::of(&message, value, &self.settings)?);
        }
        Ok(records)
    }

    /// Commits `offsets` (each the last record processed, as REST Proxy
    /// takes them), or when empty everything read so far.
    pub fn commit(&mut self, offsets: Vec<(String, i32, i64)>) -> ApiResult<()> {
        let consumer = self.consumer()?;
        if offsets.is_empty() {
            return match consumer.commit_consumer_state(CommitMode::Sync) {
                // Nothing read yet: nothing to commit.
                Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {
                    Ok(())
                }
                other => other.map_err(|e| ApiError::kafka("cannot commit", e)),
            };
        }
        let mut list = TopicPartitionList::new();
        for (topic, partition, offset) in offsets {
            list.add_partition_offset(&topic, partition, Offset::Offset(offset + 1))
                .map_err(|e| ApiError::kafka("cannot commit", e))?;
        }
        consumer
            .commit(&list, CommitMode::Sync)
            .map_err(|e| ApiError::kafka("cannot commit", e))
    }

    /// The group's committed offsets of `partitions` (the next record to
    /// read in each).
    pub fn committed(&self, partitions: Vec<(String, i32)>) -> ApiResult<Vec<CommittedOffset>> {
        let consumer = self.consumer()?;
        let mut list = TopicPartitionList::new();
        for (topic, partition) in &partitions {
            list.add_partition(topic, *partition);
        }
        let committed = consumer
            .committed_offsets(list, METADATA_TIMEOUT)
            .map_err(|e| ApiError::kafka("cannot read committed offsets", e))?;
        Ok(committed
            .elements()
            .iter()
            .map(|e: &TopicPartitionListElem<'_>| {
                let offset = match e.offset() {
                    Offset::Offset(o) => o,
                    _ => -1,
                };
                CommittedOffset {
                    topic: e.topic().to_string(),
                    partition: e.partition(),
                    offset,
                    metadata: String::new(),
                }
            })
            .collect())
    }
}

/// What an instance shows of `message`'s value under `reshaper`; `None`
/// when the terms leave the record out or cannot be applied to it.
fn reshaped(
    message: &BorrowedMessage<'_>,
    reshaper: Option<&Reshaper>,
    decoder: Option<&crate::validate::Decoder>,
) -> Option<Shown> {
    match reshaper {
        None => Some(Shown::Bytes(message.payload().map(<[u8]>::to_vec))),
        Some(reshaper) => crate::validate::under_terms(message.payload(), reshaper, decoder),
    }
}

/// Bytes as JSON, or as a JSON string when they are not JSON.
fn as_json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// A key as the instance's format shows it: in the schema-registry
/// formats, a key in the Confluent wire format decoded under its schema,
/// any other as JSON.
fn show_key(bytes: Option<&[u8]>, settings: &Settings) -> Value {
    match (bytes, settings.format, &settings.decoder) {
        (None, _, _) => Value::Null,
        (Some(bytes), Format::Binary, _) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        (Some(bytes), Format::Avro | Format::JsonSchema | Format::Protobuf, Some(decoder)) => {
            decoder
                .plain(bytes)
                .and_then(Result::ok)
                .unwrap_or_else(|| as_json(bytes))
        }
        (Some(bytes), _, _) => as_json(bytes),
    }
}

/// A value as the instance's format shows it; in the schema-registry
/// formats, a value that is not under a known schema fails the read (as in
/// Confluent's REST Proxy).
fn show_value(bytes: Option<&[u8]>, settings: &Settings) -> Result<Value, String> {
    let Some(bytes) = bytes else {
        return Ok(Value::Null);
    };
    match (settings.format, &settings.decoder) {
        (Format::Binary, _) => Ok(Value::String(
            base64::engine::general_purpose::STANDARD.encode(bytes),
        )),
        (Format::Json, _) => Ok(as_json(bytes)),
        (_, Some(decoder)) => decoder.json(bytes),
        (_, None) => Err("this instance has no schemas to read with".into()),
    }
}

/// A record as REST Proxy v2 shows it: key and value as JSON (json
/// format) or base64 (binary format), with its headers as the produce API
/// takes them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConsumerRecord {
    topic: String,
    key: Value,
    value: Value,
    partition: i32,
    offset: i64,
    timestamp: Option<i64>,
    headers: Vec<Header>,
}

impl ConsumerRecord {
    fn of(
        message: &BorrowedMessage<'_>,
        value: Shown,
        settings: &Settings,
    ) -> ApiResult<ConsumerRecord> {
        let shown = match value {
            Shown::Bytes(bytes) => show_value(bytes.as_deref(), settings),
            // Reshaped from the wire format: JSON in every format but binary.
            Shown::Json(value) if settings.format == Format::Binary => Ok(Value::String(
                base64::engine::general_purpose::STANDARD.encode(value.to_string()),
            )),
            Shown::Json(value) => Ok(value),
        };
        let shown = shown.map_err(|e| {
            ApiError::new(
                ErrorCode::KafkaError,
                format!(
                    "the record at offset {} of {}/{} cannot be read in the {} format: {e}",
                    message.offset(),
                    message.topic(),
                    message.partition(),
                    settings.format.name()
                ),
            )
        })?;
        Ok(ConsumerRecord {
            topic: message.topic().to_string(),
            key: show_key(message.key(), settings),
            value: shown,
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message.timestamp().to_millis(),
            headers: Header::all_of(message),
        })
    }
}

/// A group's committed offset of one partition.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CommittedOffset {
    topic: String,
    partition: i32,
    /// The next record to read; -1 when nothing is committed.
    offset: i64,
    metadata: String,
}
