//! Kafka REST Proxy v2 consumer routes: `/consumers/{group}` and
//! `/consumers/{group}/instances/{instance}/...` (subscription,
//! assignments, positions, records, offsets), with REST Proxy's media types
//! and error codes. See [`crate::consumers`] for how instances work.
//!
//! Topics are the stream topics the caller may read: its own, or those it
//! holds an active contract for (40302 otherwise, checked again on every
//! records request so a revocation stops reading at once).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use freeport_common::error::ErrorCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::topics::{readable_topics, topic_access};
use super::v2;
use crate::consumers::{close, with_instance, Mode, Settings, TopicRead};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, Caller};
use crate::push::reshaper_for;
use crate::wire::Format;
use crate::AppState;

pub mod positions;

/// REST Proxy's defaults.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_MAX_BYTES: usize = 1024 * 1024;
const MAX_MAX_BYTES: usize = 64 * 1024 * 1024;
/// Most records one records request returns.
const MAX_RECORDS: usize = 10_000;

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

fn invalid_config(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidConsumerConfig, message)
}

/// Group and instance names: what Kafka allows in a group id, bounded.
fn check_name(what: &str, name: &str) -> ApiResult<()> {
    let fine = !name.is_empty()
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if fine {
        Ok(())
    } else {
        Err(invalid_config(format!(
            "{what} {name:?} must be 1 to 200 letters, digits, '.', '_' or '-'"
        )))
    }
}

/// A setting given as a string or a number (REST Proxy clients send both).
fn setting_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn settings_from(body: &serde_json::Map<String, Value>) -> ApiResult<(Option<String>, Settings)> {
    let mut settings = Settings {
        format: Format::Binary,
        auto_offset_reset: "latest",
        auto_commit: true,
        request_timeout: DEFAULT_REQUEST_TIMEOUT,
        max_bytes: DEFAULT_MAX_BYTES,
    };
    let mut name = None;
    for (key, value) in body {
        if value.is_null() {
            continue;
        }
        let text = setting_text(value)
            .ok_or_else(|| invalid_config(format!("{key} must be a string or a number")))?;
        let millis = || {
            text.parse::<u64>().map(Duration::from_millis).map_err(|_| {
                invalid_config(format!("{key} must be a whole number of milliseconds"))
            })
        };
        match key.as_str() {
            "name" => {
                check_name("instance name", &text)?;
                name = Some(text);
            }
            "format" => {
                settings.format = Format::named(&text).ok_or_else(|| {
                    invalid_config(format!(
                        "format {text:?} is not supported; use \"json\" or \"binary\""
                    ))
                })?;
            }
            "auto.offset.reset" => {
                settings.auto_offset_reset = match text.as_str() {
                    "earliest" | "smallest" => "earliest",
                    "latest" | "largest" => "latest",
                    other => {
                        return Err(invalid_config(format!(
                            "auto.offset.reset {other:?} must be \"earliest\" or \"latest\""
                        )))
                    }
                }
            }
            "auto.commit.enable" => {
                settings.auto_commit = text.parse().map_err(|_| {
                    invalid_config(format!("auto.commit.enable {text:?} must be \"true\" or \"false\""))
                })?
            }
            "consumer.request.timeout.ms" => {
                settings.request_timeout = millis()?.min(MAX_REQUEST_TIMEOUT)
            }
            // Kafka tunes this itself; accepted for compatibility.
            "fetch.min.bytes" => {
                text.parse::<u64>()
                    .map_err(|_| invalid_config("fetch.min.bytes must be a whole number"))?;
            }
            other => {
                return Err(invalid_config(format!(
                    "unknown consumer setting {other:?}; known: name, format, auto.offset.reset, auto.commit.enable, fetch.min.bytes, consumer.request.timeout.ms"
                )))
            }
        }
    }
    Ok((name, settings))
}

/// `POST /consumers/{group}`: a new instance in the caller's group.
#[utoipa::path(
    post,
    path = "/consumers/{group}",
    operation_id = "consumers_create",
    tag = "rest proxy",
    params(("group" = crate::openapi::ConsumerName, Path)),
    request_body(content = crate::openapi::ConsumerSettings, content_type = "application/vnd.kafka.v2+json"),
    responses(
        (status = 200, body = crate::openapi::ConsumerCreated, content_type = "application/vnd.kafka.v2+json"),
        crate::openapi::Failures,
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(group): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Response> {
    let org = caller.require_org("create consumer instances")?;
    check_name("consumer group", &group)?;
    let Value::Object(body) = body else {
        return Err(invalid_config("the body must be a JSON object"));
    };
    let (name, settings) = settings_from(&body)?;
    let name = name.unwrap_or_else(|| format!("rest-consumer-{}", uuid::Uuid::new_v4()));
    state
        .consumers()
        .create(org, &group, &name, settings, caller.1.clone())?;
    let path = format!("/consumers/{group}/instances/{name}");
    let base_uri = match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        Some(host) => format!("{}://{host}{path}", state.scheme()),
        None => path,
    };
    tracing::info!(%org, %group, instance = %name, "consumer instance created");
    Ok(v2(json!({"instance_id": name, "base_uri": base_uri})))
}

/// Path of an instance's routes.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct InstancePath {
    #[param(value_type = crate::openapi::ConsumerName)]
    group: String,
    #[param(value_type = crate::openapi::ConsumerName)]
    instance: String,
}

impl InstancePath {
    fn get(
        &self,
        state: &AppState,
        caller: &Caller,
    ) -> ApiResult<std::sync::Arc<std::sync::Mutex<crate::consumers::Instance>>> {
        let org = caller.require_org("use consumer instances")?;
        state.consumers().get(org, &self.group, &self.instance)
    }
}

/// `DELETE /consumers/{group}/instances/{instance}`: closes it, leaving the
/// group.
#[utoipa::path(
    delete,
    path = "/consumers/{group}/instances/{instance}",
    operation_id = "consumers_delete",
    tag = "rest proxy",
    params(InstancePath),
    responses(
        (status = 204, description = "closed; it left its group"),
        crate::openapi::Failures,
    ),
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<InstancePath>,
) -> ApiResult<Response> {
    let org = caller.require_org("use consumer instances")?;
    let instance = state.consumers().remove(org, &path.group, &path.instance)?;
    close(vec![instance]).await;
    Ok(no_content())
}

/// What reading `topics` takes: each topic's access, checked now.
async fn topic_reads(
    state: &AppState,
    caller: &Caller,
    topics: impl IntoIterator<Item = String>,
) -> ApiResult<(
    BTreeMap<String, TopicRead>,
    freeport_common::config::ClusterConfig,
)> {
    let mut reads = BTreeMap::new();
    let mut cluster = None;
    for topic in topics {
        if reads.contains_key(&topic) {
            continue;
        }
        let access = topic_access(state, caller, &topic).await?;
        let reshaper = match &access.contract {
            Some(contract) => reshaper_for(state, contract)?,
            None => None,
        };
        cluster.get_or_insert(state.cluster(&access.cluster)?.clone());
        reads.insert(
            topic,
            TopicRead {
                cluster: access.cluster,
                contract: access.contract.map(|c| c.id),
                reshaper,
            },
        );
    }
    let cluster = cluster.ok_or_else(|| invalid_config("name at least one topic"))?;
    Ok((reads, cluster))
}

/// Topics by name, or a pattern (a regular expression) their whole names
/// match. Both at once are refused (409), as in REST Proxy.
/// Fields it does not know are ignored, as REST Proxy does.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum SubscriptionBody {
    Both {
        #[schema(value_type = Vec<crate::openapi::TopicName>)]
        topics: Vec<String>,
        topic_pattern: String,
    },
    Topics {
        #[schema(min_items = 1, value_type = Vec<crate::openapi::TopicName>)]
        topics: Vec<String>,
    },
    Pattern {
        topic_pattern: String,
    },
}

/// `POST .../subscription`: the group shares the topics' partitions among
/// its instances.
#[utoipa::path(
    post,
    path = "/consumers/{group}/instances/{instance}/subscription",
    operation_id = "consumers_subscribe",
    tag = "rest proxy",
    params(InstancePath),
    request_body(content = SubscriptionBody, content_type = "application/vnd.kafka.v2+json"),
    responses(
        (status = 204, description = "subscribed"),
        crate::openapi::Failures,
    ),
)]
pub async fn subscribe(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<InstancePath>,
    ApiJson(body): ApiJson<SubscriptionBody>,
) -> ApiResult<Response> {
    let instance = path.get(&state, &caller)?;
    let topics = match body {
        SubscriptionBody::Topics { topics } => topics,
        SubscriptionBody::Both { topics, .. } if !topics.is_empty() => {
            return Err(ApiError::new(
                ErrorCode::ConsumerIllegalState,
                "topics and topic_pattern are mutually exclusive",
            ))
        }
        SubscriptionBody::Pattern { topic_pattern }
        | SubscriptionBody::Both { topic_pattern, .. } => {
            matching_topics(&state, &caller, &topic_pattern).await?
        }
    };
    let (reads, cluster) = topic_reads(&state, &caller, topics).await?;
    with_instance(instance, move |i| i.subscribe(reads, &cluster)).await?;
    Ok(no_content())
}

/// The topics the caller may read whose whole name matches `pattern` (a
/// regular expression, as Kafka's pattern subscriptions take it). The
/// match is made now: topics created later need a new subscription.
async fn matching_topics(
    state: &AppState,
    caller: &Caller,
    pattern: &str,
) -> ApiResult<Vec<String>> {
    const MAX_PATTERN_CHARS: usize = 1000;
    if pattern.len() > MAX_PATTERN_CHARS {
        return Err(invalid_config(format!(
            "topic_pattern is longer than {MAX_PATTERN_CHARS} characters"
        )));
    }
    let regex = regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(1 << 20)
        .build()
        .map_err(|e| {
            invalid_config(format!(
                "topic_pattern {pattern:?} is not a regular expression: {e}"
            ))
        })?;
    let topics: Vec<String> = readable_topics(state, caller)
        .await?
        .into_iter()
        .filter(|t| regex.is_match(t))
        .collect();
    if topics.is_empty() {
        return Err(ApiError::new(
            ErrorCode::TopicNotFound,
            format!("no topic you may read matches {pattern:?} (GET /topics lists them)"),
        ));
    }
    Ok(topics)
}

#[utoipa::path(
    get,
    path = "/consumers/{group}/instances/{instance}/subscription",
    operation_id = "consumers_subscription",
    tag = "rest proxy",
    params(InstancePath),
    responses(
        (status = 200, body = crate::openapi::Subscription, content_type = "application/vnd.kafka.v2+json"),
        crate::openapi::Failures,
    ),
)]
pub async fn subscription(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<InstancePath>,
) -> ApiResult<Response> {
    let instance = path.get(&state, &caller)?;
    let topics = with_instance(instance, |i| {
        Ok(match i.mode() {
            Mode::Subscribed(topics) => topics.clone(),
            _ => vec![],
        })
    })
    .await?;
    Ok(v2(json!({ "topics": topics })))
}

/// `DELETE .../subscription`: stops reading (subscribed or assigned).
#[utoipa::path(
    delete,
    path = "/consumers/{group}/instances/{instance}/subscription",
    operation_id = "consumers_unsubscribe",
    tag = "rest proxy",
    params(InstancePath),
    responses(
        (status = 204, description = "reads nothing any more"),
        crate::openapi::Failures,
    ),
)]
pub async fn unsubscribe(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<InstancePath>,
) -> ApiResult<Response> {
    let instance = path.get(&state, &caller)?;
    with_instance(instance, |i| i.unsubscribe()).await?;
    Ok(no_content())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartitionRef {
    #[schema(value_type = crate::openapi::TopicName)]
    topic: String,
    #[schema(minimum = 0)]
    partition: i32,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartitionsBody {
    #[schema(min_items = 1)]
    partitions: Vec<PartitionRef>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OffsetRef {
    #[schema(value_type = crate::openapi::TopicName)]
    topic: String,
    #[schema(minimum = 0)]
    partition: i32,
    #[schema(minimum = 0)]
    offset: i64,
    /// Accepted for compatibility; not stored.
    #[serde(default)]
    #[allow(dead_code)]
    metadata: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OffsetsBody {
    offsets: Vec<OffsetRef>,
}

impl PartitionsBody {
    fn pairs(self) -> Vec<(String, i32)> {
        self.partitions
            .into_iter()
            .map(|p| (p.topic, p.partition))
            .collect()
    }
}

impl OffsetsBody {
    fn triples(self) -> Vec<(String, i32, i64)> {
        self.offsets
            .into_iter()
            .map(|o| (o.topic, o.partition, o.offset))
            .collect()
    }
}

/// Checks that each partition exists (40402 otherwise).
async fn check_partitions(
    state: &AppState,
    reads: &BTreeMap<String, TopicRead>,
    partitions: &[(String, i32)],
) -> ApiResult<()> {
    for (topic, partition) in partitions {
        let Some(read) = reads.get(topic) else {
            continue;
        };
        let count = state.partitions(&read.cluster, topic).await?.unwrap_or(0);
        if *partition < 0 || usize::try_from(*partition).unwrap_or(usize::MAX) >= count {
            return Err(ApiError::new(
                ErrorCode::PartitionNotFound,
                format!("partition {partition} of {topic:?} not found; it has {count}"),
            ));
        }
    }
    Ok(())
}

/// `POST .../assignments`: reads exactly these partitions.
#[utoipa::path(
    post,
    path = "/consumers/{group}/instances/{instance}/assignments",
    operation_id = "consumers_assign",
    tag = "rest proxy",
    params(InstancePath),
    request_body(content = PartitionsBody, content_type = "application/vnd.kafka.v2+json"),
    responses(
        (status = 204, description = "assigned"),
        crate::openapi::Failures,
    ),
)]
pub async fn assign(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<InstancePath>,
    ApiJson(body): ApiJson<PartitionsBody>,
) -> ApiResult<Response> {
    let instance = path.get(&state, &caller)?;
    let partitions = body.pairs();
    let topics: Vec<String> = partitions.iter().map(|(t, _)| t.clone()).collect();
    let (reads, cluster) = topic_reads(&state, &caller, topics).await?;
    check_partitions(&state, &reads, &partitions).await?;
    with_instance(instance, move |i| i.assign(partitions, reads, &cluster)).await?;
    Ok(no_content())
}

#[utoipa::path(
    get,
    path = "/consumers/{group}/instances/{instance}/assignments",
    operation_id = "consumers_assignments",
    tag = "rest proxy",
    params(InstancePath),
    responses(
        (status = 200, body = crate::openapi::Assignments, content_type = "application/vnd.kafka.v2+json"),
        crate::openapi::Failures,
    ),
)]
pub async fn assignments(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<InstancePath>,
) -> ApiResult<Response> {
    let instance = path.get(&state, &caller)?;
    let held = with_instance(instance, |i| i.assignment()).await?;
    let partitions: Vec<Value> = held
        .into_iter()
        .map(|(topic, partition)| json!({"topic": topic, "partition": partition}))
        .collect();
    Ok(v2(json!({ "partitions": partitions })))
}
