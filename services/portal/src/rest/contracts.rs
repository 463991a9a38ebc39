//! Contract requests by partners, decisions by admins.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::Json;
use freeport_common::contract::{ContractState, ContractTerms, Delivery, FilterOp, RowCondition};
use freeport_common::error::ErrorCode;
use freeport_common::names::{OrgName, StreamName};
use freeport_common::proto::catalog::v1 as pb;
use serde::{Deserialize, Serialize};

use super::contract_state_name as state_name;
use crate::error::{ApiError, ApiResult};
use crate::extract::{body_bytes, media_type, parse_json, ApiJson, ApiPath, ApiQuery, Caller};
use crate::AppState;

/// A contract request. Read as one shape (so that a refusal can say what
/// is wrong in words), documented as the two it has: see its
/// [`utoipa::PartialSchema`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestContract {
    stream: String,
    purpose: String,
    /// `kafka` (the default) or `push`.
    #[serde(default)]
    delivery: Option<Delivery>,
    /// Required for `kafka`, refused for `push`.
    #[serde(default)]
    destination: Option<Destination>,
    #[serde(default)]
    terms: Option<Terms>,
}

impl utoipa::PartialSchema for RequestContract {
    /// One shape per delivery kind: `kafka` (the default) names a
    /// `destination`, a topic on one of the partner's clusters, which the
    /// link mirrors into; `push` names none (the partner reads over HTTP:
    /// SSE, WebSocket, REST Proxy consumers; active once approved).
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            AdditionalProperties, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
        };
        use utoipa::openapi::{Ref, RefOr};
        let null = || ObjectBuilder::new().schema_type(Type::Null);
        let shape = |kind: &str, delivery: ObjectBuilder, destination: RefOr<Schema>| {
            let purpose = ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(1024))
                .pattern(Some("\\S"));
            let terms = OneOfBuilder::new()
                .item(null())
                .item(Ref::from_schema_name("Terms"));
            let object = ObjectBuilder::new()
                .title(Some(kind))
                .property("stream", Ref::from_schema_name("Identifier"))
                .required("stream")
                .property("purpose", purpose)
                .required("purpose")
                .property("delivery", delivery)
                .property("destination", destination)
                .property("terms", terms)
                .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)));
            match kind {
                "kafka" => object.required("destination"),
                _ => object.required("delivery"),
            }
        };
        let kafka = shape(
            "kafka",
            ObjectBuilder::new()
                .schema_type(SchemaType::Array(vec![Type::String, Type::Null]))
                .enum_values(Some([serde_json::json!("kafka"), serde_json::Value::Null]))
                .description(Some(
                    "Mirrored by the link into `destination`; the default.",
                )),
            Ref::from_schema_name("Destination").into(),
        );
        let push = shape(
            "push",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["push"]))
                .description(Some(
                    "Read over HTTP from the portal (SSE, WebSocket, REST Proxy consumers); nothing mirrored.",
                )),
            null().into(),
        );
        OneOfBuilder::new()
            .description(Some(
                "A contract request: how the partner receives the stream decides its shape.",
            ))
            .item(kafka)
            .item(push)
            .into()
    }
}

impl utoipa::ToSchema for RequestContract {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        for (name, schema) in [
            (Destination::name(), Destination::schema()),
            (Terms::name(), Terms::schema()),
            (
                crate::openapi::Identifier::name(),
                crate::openapi::Identifier::schema(),
            ),
        ] {
            schemas.push((name.into_owned(), schema));
        }
        Destination::schemas(schemas);
        Terms::schemas(schemas);
    }
}

/// A contract's terms as the REST API shows and takes them. Fields are
/// JSON pointers into the record value.
#[derive(Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Terms {
    #[serde(default)]
    drop_fields: Vec<String>,
    #[serde(default)]
    mask_fields: Vec<String>,
    #[serde(default)]
    hash_fields: Vec<String>,
    #[serde(default)]
    row_filter: Vec<Condition>,
    #[serde(default)]
    #[schema(minimum = 1)]
    end_time_ms: Option<i64>,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1000000)]
    max_records_per_second: Option<u32>,
    /// The owner's consumer groups whose offsets follow to the destination.
    #[serde(default)]
    #[schema(max_items = 16, value_type = Vec<crate::openapi::TopicName>)]
    consumer_groups: Vec<String>,
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    field: String,
    /// eq, ne, lt, lte, gt, gte or in.
    #[schema(pattern = "^(eq|ne|lt|lte|gt|gte|in)$")]
    op: String,
    value: serde_json::Value,
}

impl Terms {
    fn into_pb(self) -> ApiResult<pb::ContractTerms> {
        let row_filter = self
            .row_filter
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let op = FilterOp::parse(&c.op).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "terms.row_filter[{i}].op {:?} is not one of eq, ne, lt, lte, gt, gte, in",
                        c.op
                    ))
                })?;
                Ok(RowCondition {
                    field: c.field,
                    op,
                    value: c.value,
                })
            })
            .collect::<ApiResult<_>>()?;
        if self.end_time_ms == Some(0) || self.max_records_per_second == Some(0) {
            return Err(ApiError::invalid(
                "terms: omit end_time_ms or max_records_per_second instead of setting 0",
            ));
        }
        let terms = ContractTerms {
            drop_fields: self.drop_fields,
            mask_fields: self.mask_fields,
            hash_fields: self.hash_fields,
            row_filter,
            end_time_ms: self.end_time_ms,
            max_records_per_second: self.max_records_per_second,
            consumer_groups: self.consumer_groups,
        };
        Ok(terms.to_pb())
    }
}

impl From<ContractTerms> for Terms {
    fn from(t: ContractTerms) -> Terms {
        Terms {
            row_filter: t
                .row_filter
                .into_iter()
                .map(|c| Condition {
                    field: c.field,
                    op: c.op.as_str().to_string(),
                    value: c.value,
                })
                .collect(),
            drop_fields: t.drop_fields,
            mask_fields: t.mask_fields,
            hash_fields: t.hash_fields,
            end_time_ms: t.end_time_ms,
            max_records_per_second: t.max_records_per_second,
            consumer_groups: t.consumer_groups,
        }
    }
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    #[schema(value_type = crate::openapi::Identifier)]
    cluster: String,
    #[schema(value_type = crate::openapi::TopicName)]
    topic: String,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    #[serde(default)]
    #[schema(max_length = 1024)]
    reason: String,
    /// With approve only: replaces the requested terms.
    #[serde(default)]
    terms: Option<Terms>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListFilter {
    #[param(pattern = "^(requested|approved|active|suspended|rejected|revoked|expired)$")]
    state: Option<String>,
    #[param(value_type = Option<crate::openapi::Identifier>)]
    stream: Option<StreamName>,
    /// The consuming organization.
    #[param(value_type = Option<crate::openapi::Identifier>)]
    org: Option<OrgName>,
    /// The organization that owns the stream.
    #[param(value_type = Option<crate::openapi::Identifier>)]
    owner: Option<OrgName>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TransitionView {
    from: String,
    to: String,
    actor: String,
    reason: String,
    at_ms: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ContractView {
    id: String,
    stream: String,
    consumer: String,
    purpose: String,
    /// `kafka` or `push`.
    delivery: &'static str,
    /// Where a `kafka` contract mirrors to; absent for `push`.
    #[serde(skip_serializing_if = "Option::is_none")]
    destination: Option<Destination>,
    terms: Terms,
    state: String,
    link_status: String,
    history: Vec<TransitionView>,
    created_at_ms: i64,
}

impl TryFrom<pb::Contract> for ContractView {
    type Error = ApiError;

    /// Fails only for terms the catalog could not have written.
    fn try_from(c: pb::Contract) -> ApiResult<ContractView> {
        let terms = ContractTerms::from_pb(c.terms.as_ref())
            .map_err(|e| ApiError::internal("unreadable contract terms", e))?;
        Ok(ContractView {
            state: state_name(c.state),
            terms: terms.into(),
            delivery: Delivery::from_pb(c.delivery).unwrap_or_default().as_str(),
            destination: c.destination.map(|d| Destination {
                cluster: d.cluster,
                topic: d.topic,
            }),
            history: c
                .history
                .into_iter()
                .map(|t| TransitionView {
                    from: state_name(t.from),
                    to: state_name(t.to),
                    actor: t.actor,
                    reason: t.reason,
                    at_ms: t.at_ms,
                })
                .collect(),
            id: c.id,
            stream: c.stream,
            consumer: c.consumer,
            purpose: c.purpose,
            link_status: c.link_status,
            created_at_ms: c.created_at_ms,
        })
    }
}

/// Admins see every contract; an organization sees the contracts it holds
/// and those on its streams.
fn visible(caller: &Caller, contract: &pb::Contract, stream_owner: Option<&str>) -> bool {
    match caller.org() {
        None => caller.is_admin(),
        Some(org) => contract.consumer == org || stream_owner == Some(org),
    }
}

#[utoipa::path(
    post,
    path = "/v1/contracts",
    operation_id = "contracts_request",
    tag = "contracts",
    request_body = RequestContract,
    responses(
        (status = 201, body = ContractView),
        crate::error::Failures,
    ),
)]
pub async fn request(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<RequestContract>,
) -> ApiResult<(StatusCode, Json<ContractView>)> {
    caller.require_org("request contracts")?;
    let delivery = body.delivery.unwrap_or_default();
    let request = pb::RequestContractRequest {
        actor: Some(caller.0),
        stream: body.stream,
        purpose: body.purpose,
        delivery: delivery.to_pb().into(),
        destination: body.destination.map(|d| pb::ClusterDestination {
            cluster: d.cluster,
            topic: d.topic,
        }),
        terms: body.terms.map(Terms::into_pb).transpose()?,
    };
    let contract = state.catalog().request_contract(request).await?;
    Ok((StatusCode::CREATED, Json(contract.try_into()?)))
}

#[utoipa::path(
    get,
    path = "/v1/contracts/{id}",
    operation_id = "contracts_get_one",
    tag = "contracts",
    params(("id" = String, Path)),
    responses(
        (status = 200, body = ContractView),
        crate::error::Failures,
    ),
)]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ContractView>> {
    let contract = state.catalog().get_contract(&id).await?;
    let owner = match caller.org() {
        Some(org) if contract.consumer != org => {
            Some(state.catalog().get_stream(&contract.stream).await?.owner)
        }
        _ => None,
    };
    if !visible(&caller, &contract, owner.as_deref()) {
        return Err(ApiError::new(
            ErrorCode::ContractNotFound,
            format!("contract {id:?} not found"),
        ));
    }
    Ok(Json(contract.try_into()?))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ContractList {
    contracts: Vec<ContractView>,
}

/// One entry of an audit trail.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    seq: u64,
    at_ms: i64,
    actor: String,
    action: String,
    detail: serde_json::Value,
    /// Hash of this entry, chained to the previous one's.
    hash: String,
    prev_hash: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditTrail {
    entries: Vec<AuditEntry>,
}

/// `GET /v1/contracts/{id}/audit`: the contract's audit trail, oldest first,
/// for whoever may see the contract.
#[utoipa::path(
    get,
    path = "/v1/contracts/{id}/audit",
    operation_id = "contracts_audit",
    tag = "contracts",
    params(("id" = String, Path)),
    responses(
        (status = 200, body = AuditTrail),
        crate::error::Failures,
    ),
)]
pub async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<AuditTrail>> {
    let contract = get_one(State(state.clone()), caller, ApiPath(id)).await?;
    let entries: Vec<_> = state
        .catalog()
        .audit_trail(format!("contract:{}", contract.0.id))
        .await?
        .into_iter()
        .map(|e| AuditEntry {
            seq: e.seq,
            at_ms: e.at_ms,
            actor: e.actor,
            action: e.action,
            detail: serde_json::from_str(&e.detail_json).unwrap_or(serde_json::Value::Null),
            hash: e.hash,
            prev_hash: e.prev_hash,
        })
        .collect();
    Ok(Json(AuditTrail { entries }))
}

#[utoipa::path(
    get,
    path = "/v1/contracts",
    operation_id = "contracts_list",
    tag = "contracts",
    params(ListFilter),
    responses(
        (status = 200, body = ContractList),
        crate::error::Failures,
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(filter): ApiQuery<ListFilter>,
) -> ApiResult<Json<ContractList>> {
    if let Some(wanted) = &filter.state {
        if ContractState::parse(wanted).is_none() {
            return Err(ApiError::invalid(format!(
                "state {wanted:?} is not a contract state (requested, approved, active, suspended, rejected, revoked, expired)"
            )));
        }
    }
    let views: Vec<ContractView> = state
        .view()
        .contracts_concerning(caller.org(), filter.stream.as_ref().map(StreamName::as_str))
        .await?
        .into_iter()
        .filter(|(c, owner)| {
            filter
                .state
                .as_ref()
                .is_none_or(|s| *s == state_name(c.state))
                && filter.org.as_ref().is_none_or(|o| o.as_str() == c.consumer)
                && filter
                    .owner
                    .as_ref()
                    .is_none_or(|o| owner.as_deref() == Some(o.as_str()))
                && visible(&caller, c, owner.as_deref())
        })
        .map(|(c, _)| ContractView::try_from(pb::Contract::clone(&c)))
        .collect::<ApiResult<_>>()?;
    Ok(Json(ContractList { contracts: views }))
}

/// `POST /v1/contracts/{id}/{approve|reject|suspend|resume|revoke}`, with
/// an optional `{"reason": "...", "terms": {...}}` body (terms with approve
/// only).
#[utoipa::path(
    post,
    path = "/v1/contracts/{id}/{action}",
    operation_id = "contracts_act",
    tag = "contracts",
    params(("id" = String, Path), ("action" = String, Path, description = "approve, reject, suspend, resume or revoke")),
    request_body(content = Option<Decision>, description = "optional"),
    responses(
        (status = 200, body = ContractView),
        crate::error::Failures,
    ),
)]
pub async fn act(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, action)): ApiPath<(String, String)>,
    request: Request,
) -> ApiResult<Json<ContractView>> {
    let action = match action.as_str() {
        "approve" => pb::ContractAction::Approve,
        "reject" => pb::ContractAction::Reject,
        "revoke" => pb::ContractAction::Revoke,
        "suspend" => pb::ContractAction::Suspend,
        "resume" => pb::ContractAction::Resume,
        _ => {
            return Err(ApiError::new(
                ErrorCode::RouteNotFound,
                format!(
                    "unknown contract action {action:?}; use approve, reject, suspend, resume or revoke"
                ),
            ))
        }
    };
    caller.require_admin("decide on contracts")?;
    let has_json_type = media_type(request.headers()).is_some_and(|m| m.contains("json"));
    let body = body_bytes(request, &state).await?;
    let decision: Decision = if body.iter().all(u8::is_ascii_whitespace) {
        Decision::default()
    } else if has_json_type {
        parse_json(&body)?
    } else {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "a request body must be application/json",
        ));
    };
    let contract = state
        .catalog()
        .transition_contract(pb::TransitionContractRequest {
            actor: Some(caller.0),
            id,
            action: action.into(),
            reason: decision.reason,
            terms: decision.terms.map(Terms::into_pb).transpose()?,
        })
        .await?;
    Ok(Json(contract.try_into()?))
}
