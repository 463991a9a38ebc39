//! Kafka REST Proxy v2 topic metadata: `GET /topics`, `/topics/{topic}`,
//! `/topics/{topic}/partitions`, `/topics/{topic}/partitions/{p}` and
//! `/topics/{topic}/partitions/{p}/offsets`, in REST Proxy's shapes and
//! media type.
//!
//! A topic here is a stream's topic on its owner's cluster. A caller sees
//! the topics of its own streams and of the streams it has an active
//! contract for; an admin sees every stream's topic.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use freeport_common::error::ErrorCode;
use freeport_common::kafka::{
    all_topic_configs, broker_ids, partition_ends, topic_layout, PartitionLayout,
};
use freeport_common::names::ClusterName;
use freeport_common::proto::catalog::v1 as pb;
use serde::Serialize;
use utoipa::ToSchema;

use super::V2;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, Caller};
use crate::AppState;

/// How the caller may use a topic.
pub(crate) struct TopicAccess {
    pub cluster: ClusterName,
    /// The contract the caller reads under; `None` for the stream's owner
    /// and for admins.
    pub contract: Option<pb::Contract>,
}

/// The caller's access to `topic`, decided by the portal's view of the
/// catalog ([`crate::access`]); a read under a contract spends one of its
/// requests.
pub(crate) async fn topic_access(
    state: &AppState,
    caller: &Caller,
    topic: &str,
) -> ApiResult<TopicAccess> {
    let readable = state.view().readable_topic(caller.org(), topic).await?;
    if let Some(contract) = &readable.contract {
        state.limits().request(&contract.id)?;
    }
    Ok(TopicAccess {
        cluster: readable.cluster()?,
        contract: readable.contract.as_deref().cloned(),
    })
}

/// The caller's access to `topic` and the topic's partitions.
async fn layout(
    state: &AppState,
    caller: &Caller,
    topic: &str,
) -> ApiResult<(TopicAccess, Vec<PartitionLayout>)> {
    let access = topic_access(state, caller, topic).await?;
    let partitions = topic_layout(state.cluster(&access.cluster)?, topic)
        .await
        .map_err(|e| ApiError::kafka(&format!("cannot read metadata of {topic}"), e))?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::TopicNotFound,
                format!("topic {topic:?} not found on its cluster"),
            )
        })?;
    Ok((access, partitions))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Topic {
    name: String,
    /// As far as the cluster describes them (some describe none).
    configs: BTreeMap<String, String>,
    partitions: Vec<Partition>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Partition {
    partition: i32,
    leader: i32,
    replicas: Vec<Replica>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Replica {
    broker: i32,
    leader: bool,
    in_sync: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PartitionOffsets {
    beginning_offset: i64,
    /// The offset the next record will get.
    end_offset: i64,
}

impl From<&PartitionLayout> for Partition {
    fn from(partition: &PartitionLayout) -> Partition {
        let replicas = partition
            .replicas
            .iter()
            .map(|&broker| Replica {
                broker,
                leader: broker == partition.leader,
                in_sync: partition.in_sync.contains(&broker),
            })
            .collect();
        Partition {
            partition: partition.id,
            leader: partition.leader,
            replicas,
        }
    }
}

fn find_partition(partitions: &[PartitionLayout], id: i32) -> ApiResult<&PartitionLayout> {
    partitions.iter().find(|p| p.id == id).ok_or_else(|| {
        ApiError::new(
            ErrorCode::PartitionNotFound,
            format!(
                "partition {id} not found; the topic has {}",
                partitions.len()
            ),
        )
    })
}

/// The names of the topics the caller may see, sorted.
pub(crate) async fn readable_topics(state: &AppState, caller: &Caller) -> ApiResult<Vec<String>> {
    let mut topics: Vec<String> = state
        .view()
        .readable_streams(caller.org())
        .await?
        .into_iter()
        .map(|readable| readable.stream.topic.clone())
        .collect();
    topics.sort();
    topics.dedup();
    Ok(topics)
}

/// The brokers behind the caller's topics.
#[derive(Debug, Serialize, ToSchema)]
pub struct Brokers {
    brokers: Vec<i32>,
}

/// `GET /brokers`: the ids of the brokers of the clusters the caller's
/// topics live on and of its own clusters (every configured cluster's for
/// admins). Confluent's REST Proxy serves one cluster; this portal serves
/// several, so ids two clusters share appear once.
#[utoipa::path(
    get,
    path = "/brokers",
    operation_id = "topics_brokers",
    tag = "rest proxy",
    responses(
        (status = 200, body = Brokers, content_type = "application/vnd.kafka.v2+json"),
        crate::error::Failures,
    ),
)]
pub async fn brokers(State(state): State<AppState>, caller: Caller) -> ApiResult<V2<Brokers>> {
    let mut clusters: BTreeSet<ClusterName> = state
        .clusters_of(&caller)
        .map(|(name, _)| name.clone())
        .collect();
    for readable in state.view().readable_streams(caller.org()).await? {
        if let Ok(name) = ClusterName::parse(readable.stream.cluster.clone()) {
            clusters.insert(name);
        }
    }
    let mut ids = BTreeSet::new();
    for name in clusters {
        let found = broker_ids(state.cluster(&name)?)
            .await
            .map_err(|e| ApiError::kafka(&format!("cannot read the brokers of {name}"), e))?;
        ids.extend(found);
    }
    Ok(V2(Brokers {
        brokers: ids.into_iter().collect(),
    }))
}

/// `GET /topics`: the names of the topics the caller may see.
#[utoipa::path(
    get,
    path = "/topics",
    operation_id = "topics_list",
    tag = "rest proxy",
    responses(
        (status = 200, body = Vec<String>, content_type = "application/vnd.kafka.v2+json"),
        crate::error::Failures,
    ),
)]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<V2<Vec<String>>> {
    Ok(V2(readable_topics(&state, &caller).await?))
}

/// `GET /topics/{topic}`: its configs (as far as the cluster describes
/// them) and partitions.
#[utoipa::path(
    get,
    path = "/topics/{topic}",
    operation_id = "topics_get_one",
    tag = "rest proxy",
    params(("topic" = crate::openapi::TopicName, Path)),
    responses(
        (status = 200, body = Topic, content_type = "application/vnd.kafka.v2+json"),
        crate::error::Failures,
    ),
)]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(topic): ApiPath<String>,
) -> ApiResult<V2<Topic>> {
    let (access, partitions) = layout(&state, &caller, &topic).await?;
    let configs = all_topic_configs(state.cluster(&access.cluster)?, &topic).await;
    Ok(V2(Topic {
        name: topic,
        configs,
        partitions: partitions.iter().map(Partition::from).collect(),
    }))
}

/// `GET /topics/{topic}/partitions`.
#[utoipa::path(
    get,
    path = "/topics/{topic}/partitions",
    operation_id = "topics_partitions",
    tag = "rest proxy",
    params(("topic" = crate::openapi::TopicName, Path)),
    responses(
        (status = 200, body = Vec<Partition>, content_type = "application/vnd.kafka.v2+json"),
        crate::error::Failures,
    ),
)]
pub async fn partitions(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(topic): ApiPath<String>,
) -> ApiResult<V2<Vec<Partition>>> {
    let (_, partitions) = layout(&state, &caller, &topic).await?;
    Ok(V2(partitions.iter().map(Partition::from).collect()))
}

/// `GET /topics/{topic}/partitions/{partition}`.
#[utoipa::path(
    get,
    path = "/topics/{topic}/partitions/{partition}",
    operation_id = "topics_partition",
    tag = "rest proxy",
    params(("topic" = crate::openapi::TopicName, Path), ("partition" = i32, Path, minimum = 0)),
    responses(
        (status = 200, body = Partition, content_type = "application/vnd.kafka.v2+json"),
        crate::error::Failures,
    ),
)]
pub async fn partition(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((topic, id)): ApiPath<(String, i32)>,
) -> ApiResult<V2<Partition>> {
    let (_, partitions) = layout(&state, &caller, &topic).await?;
    Ok(V2(find_partition(&partitions, id)?.into()))
}

/// `GET /topics/{topic}/partitions/{partition}/offsets`.
#[utoipa::path(
    get,
    path = "/topics/{topic}/partitions/{partition}/offsets",
    operation_id = "topics_offsets",
    tag = "rest proxy",
    params(("topic" = crate::openapi::TopicName, Path), ("partition" = i32, Path, minimum = 0)),
    responses(
        (status = 200, body = PartitionOffsets, content_type = "application/vnd.kafka.v2+json"),
        crate::error::Failures,
    ),
)]
pub async fn offsets(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((topic, id)): ApiPath<(String, i32)>,
) -> ApiResult<V2<PartitionOffsets>> {
    let (access, partitions) = layout(&state, &caller, &topic).await?;
    find_partition(&partitions, id)?;
    let ends = partition_ends(state.cluster(&access.cluster)?, &topic, vec![id])
        .await
        .map_err(|e| ApiError::kafka(&format!("cannot read offsets of {topic}"), e))?;
    let (beginning, end) = ends.get(&id).copied().ok_or_else(|| {
        ApiError::new(
            ErrorCode::PartitionNotFound,
            format!("partition {id} not found"),
        )
    })?;
    Ok(V2(PartitionOffsets {
        beginning_offset: beginning,
        end_offset: end,
    }))
}
