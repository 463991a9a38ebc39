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
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::topics::{readable_topics, topic_access};
use utoipa::ToSchema;

use super::V2;
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
/// The largest whole-number setting (milliseconds or bytes).
const MAX_SETTING: u64 = 999_999_999;
/// Most records one records request returns.
const MAX_RECORDS: usize = 10_000;

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

fn invalid_config(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidConsumerConfig, message)
}

/// Group and instance names: what Kafka allows in a group id, bounded.
pub(crate) fn check_name(what: &str, name: &str) -> ApiResult<()> {
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

/// A new REST Proxy consumer instance's settings. Names and choices are
/// strings; the numbers and the flag may also be sent as JSON numbers and
/// booleans, as REST Proxy clients send them. Other settings (Kafka
/// consumer properties such as `topic.metadata.refresh.interval.ms`) are
/// accepted and ignored, as Confluent's REST Proxy does.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ConsumerSettings {
    #[schema(value_type = Option<crate::openapi::ConsumerName>)]
    name: Option<String>,
    /// `binary` (the default), `json`, `avro` or `jsonschema` (values in
    /// the Confluent wire format, shown as JSON).
    #[schema(pattern = "^(binary|json|avro|jsonschema)$")]
    format: Option<String>,
    /// `earliest` or `latest` (the default); `smallest` and `largest` are
    /// their old names.
    #[serde(rename = "auto.offset.reset")]
    #[schema(pattern = "^(earliest|latest|smallest|largest)$")]
    auto_offset_reset: Option<String>,
    #[serde(rename = "auto.commit.enable")]
    #[schema(schema_with = flag_setting)]
    auto_commit_enable: Option<Setting>,
    /// Accepted for compatibility: Kafka tunes fetching itself.
    #[serde(rename = "fetch.min.bytes")]
    #[schema(schema_with = whole_number_setting)]
    fetch_min_bytes: Option<Setting>,
    #[serde(rename = "consumer.request.timeout.ms")]
    #[schema(schema_with = whole_number_setting)]
    consumer_request_timeout_ms: Option<Setting>,
}

/// A setting's value as REST Proxy clients send it: a string, or the
/// number or boolean it spells.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Setting {
    Text(String),
    Number(serde_json::Number),
    Flag(bool),
}

impl Setting {
    fn whole_number(&self, key: &str) -> ApiResult<u64> {
        match self {
            Setting::Number(n) => crate::strict::whole(n).and_then(|n| n.as_u64()),
            Setting::Text(text) => text.parse().ok(),
            Setting::Flag(_) => None,
        }
        .filter(|n| *n <= MAX_SETTING)
        .ok_or_else(|| {
            invalid_config(format!(
                "{key} must be a whole number from 0 to {MAX_SETTING}"
            ))
        })
    }

    fn flag(&self, key: &str) -> ApiResult<bool> {
        match self {
            Setting::Flag(b) => Some(*b),
            Setting::Text(text) => text.parse().ok(),
            Setting::Number(_) => None,
        }
        .ok_or_else(|| invalid_config(format!("{key} must be \"true\" or \"false\"")))
    }
}

/// A setting's schema: a string matching `pattern`, the JSON value it
/// spells (`native`), or null.
fn setting_schema(
    pattern: &str,
    native: utoipa::openapi::schema::ObjectBuilder,
) -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(pattern)),
        )
        .item(native)
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .build()
        .into()
}

fn flag_setting() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    setting_schema(
        "^(true|false)$",
        ObjectBuilder::new().schema_type(Type::Boolean),
    )
}

fn whole_number_setting() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    setting_schema(
        "^[0-9]{1,9}$",
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
            .maximum(Some(MAX_SETTING as f64)),
    )
}

impl ConsumerSettings {
    fn settings(self) -> ApiResult<(Option<String>, Settings)> {
        if let Some(name) = &self.name {
            check_name("instance name", name)?;
        }
        let format = match self.format.as_deref() {
            None => Format::Binary,
            Some(text) => Format::named(text).ok_or_else(|| {
                invalid_config(format!(
                    "format {text:?} is not supported; use \"json\", \"binary\", \"avro\" or \"jsonschema\""
                ))
            })?,
        };
        let auto_offset_reset = match self.auto_offset_reset.as_deref() {
            None | Some("latest" | "largest") => "latest",
            Some("earliest" | "smallest") => "earliest",
            Some(other) => {
                return Err(invalid_config(format!(
                    "auto.offset.reset {other:?} must be \"earliest\" or \"latest\""
                )))
            }
        };
        let auto_commit = match &self.auto_commit_enable {
            None => true,
            Some(setting) => setting.flag("auto.commit.enable")?,
        };
        if let Some(setting) = &self.fetch_min_bytes {
            setting.whole_number("fetch.min.bytes")?;
        }
        let request_timeout = match &self.consumer_request_timeout_ms {
            None => DEFAULT_REQUEST_TIMEOUT,
            Some(setting) => {
                Duration::from_millis(setting.whole_number("consumer.request.timeout.ms")?)
                    .min(MAX_REQUEST_TIMEOUT)
            }
        };
        let settings = Settings {
            format,
            auto_offset_reset,
            auto_commit,
            request_timeout,
            max_bytes: DEFAULT_MAX_BYTES,
            decoder: None,
        };
        Ok((self.name, settings))
    }
}

/// The body of `POST /consumers/{group}`, refused with REST Proxy's
/// consumer-configuration code (42204) when it is not the settings.
fn consumer_settings(body: Value) -> ApiResult<ConsumerSettings> {
    crate::strict::from_value(body)
        .map_err(|e| invalid_config(format!("invalid consumer settings: {e}")))
}

/// `POST /consumers/{group}`: a new instance in the caller's group.
#[utoipa::path(
    post,
    path = "/consumers/{group}",
    operation_id = "consumers_create",
    tag = "rest proxy",
    params(("group" = crate::openapi::ConsumerName, Path)),
    request_body(content = ConsumerSettings, content_type = "application/vnd.kafka.v2+json"),
    responses(
        (status = 200, body = ConsumerCreated, content_type = "application/vnd.kafka.v2+json"),
        crate::error::Failures,
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(group): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<V2<ConsumerCreated>> {
    let org = caller.require_org("create consumer instances")?;
    check_name("consumer group", &group)?;
    let (name, mut settings) = consumer_settings(body)?.settings()?;
    // Reads the wire format: in the schema-registry formats, and to reshape
    // wire-format values under a contract's terms in any format.
    settings.decoder = Some(crate::validate::Decoder::new(
        state.view().clone(),
        state.record_schemas().clone(),
    ));
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
    Ok(V2(ConsumerCreated {
        instance_id: name,
        base_uri,
    }))
}

/// Path of an instance's routes.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct InstancePath {
    #[param(value_type = crate::openapi::ConsumerName)]
    pub(super) group: String,
    #[param(value_type = crate::openapi::ConsumerName)]
    pub(super) instance: String,
}

impl InstancePath {
    pub(super) fn get(
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
        crate::error::Failures,
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
pub(super) async fn topic_reads(
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
        crate::error::Failures,
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
        (status = 200, body = Subscription, content_type = "application/vnd.kafka.v2+json"),
        crate::error::Failures,
    ),
)]
pub async fn subscription(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<InstancePath>,
) -> ApiResult<V2<Subscription>> {
    let instance = path.get(&state, &caller)?;
    let topics = with_instance(instance, |i| {
        Ok(match i.mode() {
            Mode::Subscribed(topics) => topics.clone(),
            _ => vec![],
        })
    })
    .await?;
    Ok(V2(Subscription { topics }))
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
        crate::error::Failures,
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

/// A topic's partition, as consumers name them.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartitionRef {
    #[schema(value_type = crate::openapi::TopicName)]
    topic: String,
    #[schema(minimum = 0)]
    partition: i32,
}

/// The partitions an instance is assigned.
#[derive(Debug, Serialize, ToSchema)]
pub struct Assignments {
    partitions: Vec<PartitionRef>,
}

/// The topics an instance is subscribed to.
#[derive(Debug, Serialize, ToSchema)]
pub struct Subscription {
    topics: Vec<String>,
}

/// Where a new instance is.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsumerCreated {
    instance_id: String,
    base_uri: String,
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

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
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
        crate::error::Failures,
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
        (status = 200, body = Assignments, content_type = "application/vnd.kafka.v2+json"),
        crate::error::Failures,
    ),
)]
pub async fn assignments(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<InstancePath>,
) -> ApiResult<V2<Assignments>> {
    let instance = path.get(&state, &caller)?;
    let held = with_instance(instance, |i| i.assignment()).await?;
    let partitions = held
        .into_iter()
        .map(|(topic, partition)| PartitionRef { topic, partition })
        .collect();
    Ok(V2(Assignments { partitions }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(body: Value) -> ApiResult<Settings> {
        consumer_settings(body)?.settings().map(|(_, s)| s)
    }

    #[test]
    fn settings_take_strings_numbers_and_flags_as_rest_proxy_clients_send_them() {
        for body in [
            json!({"auto.commit.enable": "false", "consumer.request.timeout.ms": "2500"}),
            json!({"auto.commit.enable": false, "consumer.request.timeout.ms": 2500}),
            json!({"auto.commit.enable": false, "consumer.request.timeout.ms": 2500.0}),
        ] {
            let s = settings(body.clone()).unwrap();
            assert!(!s.auto_commit, "{body}");
            assert_eq!(s.request_timeout, Duration::from_millis(2500), "{body}");
        }
        let s = settings(
            json!({"format": "json", "auto.offset.reset": "smallest", "fetch.min.bytes": null}),
        )
        .unwrap();
        assert_eq!((s.format, s.auto_offset_reset), (Format::Json, "earliest"));
    }

    #[test]
    fn settings_outside_the_document_are_refused_with_the_consumer_code() {
        for body in [
            json!({"consumer.request.timeout.ms": 1_000_000_000u64}),
            json!({"consumer.request.timeout.ms": "1000000000"}),
            json!({"consumer.request.timeout.ms": 2.5}),
            json!({"consumer.request.timeout.ms": -1}),
            json!({"auto.commit.enable": 1}),
            json!({"fetch.min.bytes": true}),
            json!({"name": 7}),
            json!([]),
        ] {
            let err = settings(body.clone()).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidConsumerConfig, "{body}: {err}");
        }
    }
}
