//! The Schema Registry API's decisions: which stream a subject names for a
//! caller, which subjects a caller sees, and who holds a global schema id.
//!
//! A caller sees a stream's subjects on the terms it may read the stream:
//! its owner and admins by the stream's topic, a partner with an active
//! contract by the topic the contract delivers into (the topic its
//! consumers read), nobody else at all. When the contract's terms reshape
//! values, the partner's subject holds the schemas the reshaped values
//! were delivered under (the catalog derives them), not the stream's.

use std::sync::Arc;

use freeport_common::error::ErrorCode;
use freeport_common::proto::catalog::v1 as pb;

use super::{AccessView, Index, Readable};
use crate::error::{ApiError, ApiResult};

/// A stream as one caller's subjects name it.
pub struct SubjectStream {
    /// The topic in the caller's subject names (`<topic>-value`); for a
    /// subject named through a reference, `:.<stream>:<topic>`.
    pub topic: String,
    pub readable: Readable,
    /// Named through a reference: only these versions are the caller's.
    only: Option<Vec<(pb::RecordPart, u32)>>,
}

impl SubjectStream {
    fn of(readable: Readable) -> SubjectStream {
        SubjectStream {
            topic: topic_for(&readable),
            readable,
            only: None,
        }
    }

    pub fn stream(&self) -> &Arc<pb::Stream> {
        &self.readable.stream
    }

    /// The versions of the caller's subject of `part`, oldest first: the
    /// stream's, or the values' a reshaping contract delivered under (terms
    /// never reshape keys).
    pub fn versions(&self, part: pb::RecordPart) -> Vec<pb::SchemaVersion> {
        if let Some(only) = &self.only {
            let versions = self.readable.stream.versions(part).iter();
            return versions
                .filter(|v| only.contains(&(part, v.version)))
                .cloned()
                .collect();
        }
        match &self.readable.contract {
            Some(contract) if part == pb::RecordPart::Value && reshapes(contract) => {
                let mut delivered = contract.delivered_schemas.clone();
                delivered.sort_by_key(|v| v.version);
                delivered
            }
            _ => self.readable.stream.versions(part).to_vec(),
        }
    }
}

/// A subject named through a schema reference, as the registry answers
/// references to a caller that does not own the referenced stream:
/// `:.<stream>:<topic>-<part>` (Confluent's context-qualified subject
/// syntax, the context being the referenced stream). It cannot collide
/// with a TopicNameStrategy subject: a topic name has no `:`.
pub fn referenced_subject(stream: &pb::Stream, part: pb::RecordPart) -> String {
    format!("{}-{}", referenced_topic(stream), part.name())
}

/// The topic part of [`referenced_subject`]: `:.<stream>:<topic>`.
fn referenced_topic(stream: &pb::Stream) -> String {
    format!(":.{}:{}", stream.name, stream.topic)
}

/// A subject version that has a global schema id.
pub struct Holder {
    pub subject: SubjectStream,
    pub part: pb::RecordPart,
    pub version: pb::SchemaVersion,
}

/// Whether a contract's terms change the shape of values (the rule the
/// catalog derives delivered schemas by).
fn reshapes(contract: &pb::Contract) -> bool {
    freeport_common::contract::ContractTerms::from_pb(contract.terms.as_ref())
        .is_ok_and(|terms| freeport_common::schema::reshape::reshapes(&terms))
}

/// The topic `readable` is known by to the caller that may read it.
fn topic_for(readable: &Readable) -> String {
    readable
        .contract
        .as_ref()
        .and_then(|c| c.destination.as_ref())
        .map_or_else(|| readable.stream.topic.clone(), |d| d.topic.clone())
}

impl AccessView {
    /// The stream the caller's subject topic `topic` names: its own (or,
    /// for an admin, any) stream on that topic, else one it holds an active
    /// contract on that delivers into that topic (for a push contract, the
    /// stream's own topic). 40410 when none.
    pub async fn subject_stream(&self, org: Option<&str>, topic: &str) -> ApiResult<SubjectStream> {
        self.settled(|view| view.subject_stream_now(org, topic))
            .await
    }

    fn subject_stream_now(&self, org: Option<&str>, topic: &str) -> ApiResult<SubjectStream> {
        self.current()?;
        let index = self.read();
        let own = index
            .by_topic
            .get(topic)
            .into_iter()
            .flatten()
            .filter_map(|name| index.streams.get(name))
            .filter(|stream| org.is_none_or(|org| stream.owner == org));
        let contracted = org
            .and_then(|org| index.active_by_consumer.get(org))
            .into_iter()
            .flatten()
            .filter_map(|id| index.contracts.get(id))
            // A push contract has no destination: its subjects are under
            // the stream's own topic (checked below).
            .filter(|c| c.destination.as_ref().is_none_or(|d| d.topic == topic))
            .filter_map(|c| index.streams.get(&c.stream));
        own.chain(contracted)
            .find_map(|stream| {
                self.readable(&index, org, stream)
                    .filter(|readable| topic_for(readable) == topic)
            })
            .map(SubjectStream::of)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::StreamNotFound,
                    format!("no stream the caller may read is known by topic {topic:?}"),
                )
            })
    }

    /// The subject `:.<stream>:<topic>` names for the caller (see
    /// [`referenced_subject`]): the versions of `stream` that something
    /// the caller reads depends on (every version, for its owner). 40410
    /// when there are none.
    pub async fn referenced_stream(
        &self,
        org: Option<&str>,
        stream: &str,
        topic: &str,
    ) -> ApiResult<SubjectStream> {
        self.settled(|view| view.referenced_stream_now(org, stream, topic))
            .await
    }

    fn referenced_stream_now(
        &self,
        org: Option<&str>,
        name: &str,
        topic: &str,
    ) -> ApiResult<SubjectStream> {
        self.current()?;
        let index = self.read();
        let none = || {
            ApiError::new(
                ErrorCode::StreamNotFound,
                format!("no schema the caller may read refers to stream {name:?}"),
            )
        };
        let stream = index
            .streams
            .get(name)
            .filter(|s| s.topic == topic)
            .ok_or_else(none)?;
        let owns = org.is_none_or(|org| stream.owner == org);
        let visible: Vec<(pb::RecordPart, u32)> = stream
            .all_versions()
            .map(|(part, v)| (part, v.version))
            .filter(|(part, number)| {
                owns || index
                    .referrers
                    .get(&(stream.name.clone(), *part, *number))
                    .into_iter()
                    .flatten()
                    .filter_map(|((referrer, _, _), _)| index.streams.get(referrer))
                    .any(|referrer| self.readable(&index, org, referrer).is_some())
            })
            .collect();
        if visible.is_empty() {
            return Err(none());
        }
        Ok(SubjectStream {
            topic: referenced_topic(stream),
            readable: Readable {
                stream: stream.clone(),
                contract: None,
            },
            only: Some(visible),
        })
    }

    /// The subject the caller names the version `reference` points at by:
    /// its own stream's `<topic>-<part>`, else [`referenced_subject`].
    pub fn reference_subject(&self, org: Option<&str>, reference: &pb::SchemaReference) -> String {
        let index = self.read();
        match index.streams.get(&reference.stream) {
            Some(stream) if org.is_none_or(|org| stream.owner == org) => {
                format!("{}-{}", stream.topic, reference.part().name())
            }
            Some(stream) => referenced_subject(stream, reference.part()),
            None => format!(":.{}:", reference.stream),
        }
    }

    /// The global ids of the versions that refer directly to `stream`'s
    /// `part` version `number` and that the caller may read, ascending.
    pub fn referenced_by(
        &self,
        org: Option<&str>,
        stream: &str,
        part: pb::RecordPart,
        number: u32,
    ) -> Vec<u32> {
        let index = self.read();
        let mut ids: Vec<u32> = index
            .referrers
            .get(&(stream.to_string(), part, number))
            .into_iter()
            .flatten()
            .filter(|(_, direct)| *direct)
            .filter_map(|((name, part, number), _)| {
                let referrer = index.streams.get(name)?;
                self.readable(&index, org, referrer)?;
                let version = referrer
                    .versions(*part)
                    .iter()
                    .find(|v| v.version == *number)?;
                (!version.deleted).then_some(version.id)
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Every stream whose subjects the caller sees, in stream name order.
    pub async fn subject_streams(&self, org: Option<&str>) -> ApiResult<Vec<SubjectStream>> {
        Ok(self
            .readable_streams(org)
            .await?
            .into_iter()
            .map(SubjectStream::of)
            .collect())
    }

    /// The subjects with global schema id `id` that the caller may read;
    /// 40410 when there are none.
    pub async fn schema_holders(&self, org: Option<&str>, id: u32) -> ApiResult<Vec<Holder>> {
        self.settled(|view| view.schema_holders_now(org, id)).await
    }

    fn schema_holders_now(&self, org: Option<&str>, id: u32) -> ApiResult<Vec<Holder>> {
        self.current()?;
        let index = self.read();
        let mut holders: Vec<_> = index
            .by_schema_id
            .get(&id)
            .into_iter()
            .flatten()
            .filter_map(|(name, part, number)| self.holder(&index, org, name, *part, *number))
            .collect();
        holders.extend(
            index
                .delivered_by_id
                .get(&id)
                .into_iter()
                .flatten()
                .filter_map(|(contract, number)| {
                    self.delivered_holder(&index, org, contract, *number)
                }),
        );
        if holders.is_empty() {
            return Err(ApiError::new(
                ErrorCode::StreamNotFound,
                format!("no schema with id {id} on a stream the caller may read"),
            ));
        }
        Ok(holders)
    }

    /// A schema version with global id `id`, whichever stream has it (the
    /// same schema on each): for reading records that name it.
    pub fn schema_with_id(&self, id: u32) -> Option<pb::SchemaVersion> {
        let index = self.read();
        let of_stream = || {
            let (name, part, number) = index.by_schema_id.get(&id)?.iter().next()?;
            let versions = index.streams.get(name)?.versions(*part);
            versions.iter().find(|v| v.version == *number).cloned()
        };
        let delivered = || {
            let (contract, number) = index.delivered_by_id.get(&id)?.iter().next()?;
            let versions = &index.contracts.get(contract)?.delivered_schemas;
            versions.iter().find(|v| v.version == *number).cloned()
        };
        of_stream().or_else(delivered)
    }

    fn holder(
        &self,
        index: &Index,
        org: Option<&str>,
        name: &str,
        part: pb::RecordPart,
        number: u32,
    ) -> Option<Holder> {
        let stream = index.streams.get(name)?;
        let version = stream
            .versions(part)
            .iter()
            .find(|v| v.version == number)?
            .clone();
        let readable = self.readable(index, org, stream)?;
        let subject = SubjectStream::of(readable);
        // A partner whose contract reshapes values sees the delivered
        // schemas, not the stream's own.
        subject
            .versions(part)
            .iter()
            .any(|v| v.id == version.id)
            .then_some(Holder {
                subject,
                part,
                version,
            })
    }

    /// Contract `id`'s delivered schema of `number`, for its consumer
    /// while the contract is active.
    fn delivered_holder(
        &self,
        index: &Index,
        org: Option<&str>,
        id: &str,
        number: u32,
    ) -> Option<Holder> {
        let contract = index.contracts.get(id)?;
        let stream = index.streams.get(&contract.stream)?;
        let readable = self.readable(index, org, stream)?;
        if readable.contract.as_ref().map(|c| &c.id) != Some(&contract.id) {
            return None;
        }
        let version = contract
            .delivered_schemas
            .iter()
            .find(|v| v.version == number)?
            .clone();
        Some(Holder {
            subject: SubjectStream::of(readable),
            part: pb::RecordPart::Value,
            version,
        })
    }
}
