//! `POST /v1/asyncapi`: an owner publishes an AsyncAPI 3.0 document (YAML
//! or JSON) and the streams it describes appear in the catalog.

use axum::extract::{Request, State};
use axum::Json;
use freeport_common::error::ErrorCode;
use freeport_common::kafka::ensure_topic;
use freeport_common::names::ClusterName;
use freeport_common::proto::catalog::v1 as pb;

use serde::Serialize;
use utoipa::ToSchema;

use super::streams::{StreamList, StreamView};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{body_bytes, media_type, ApiPath, Caller};
use crate::AppState;

fn is_document_type(media_type: &str) -> bool {
    matches!(
        media_type,
        "application/json"
            | "application/yaml"
            | "application/x-yaml"
            | "text/yaml"
            | "text/x-yaml"
    ) || (media_type.starts_with("application/")
        && (media_type.ends_with("+json") || media_type.ends_with("+yaml")))
}

fn refused(problems: Vec<pb::DocumentProblem>) -> ApiError {
    let count = problems.len();
    let list = problems
        .into_iter()
        .map(|p| Problem {
            pointer: p.pointer,
            message: p.message,
        })
        .collect();
    let mut error = ApiError::new(
        ErrorCode::InvalidDocument,
        format!("the AsyncAPI document has {count} problem(s); nothing was published"),
    );
    error.problems = Some(list);
    error
}

#[utoipa::path(
    post,
    path = "/v1/asyncapi",
    operation_id = "publish_publish",
    tag = "publishing",
    request_body(description = "an AsyncAPI 3.0 document", content((String = "application/yaml"), (Object = "application/json"))),
    responses(
        (status = 200, body = StreamList),
        crate::error::Failures,
    ),
)]
pub async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    request: Request,
) -> ApiResult<Json<StreamList>> {
    caller.require_org("publish AsyncAPI documents")?;
    match media_type(request.headers()) {
        Some(m) if is_document_type(&m) => {}
        other => {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!(
                    "content type {:?} is not an AsyncAPI document; send application/yaml or application/json",
                    other.unwrap_or_default()
                ),
            ))
        }
    }
    let body = body_bytes(request, &state).await?;
    let document = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::new(ErrorCode::MalformedBody, "the document is not UTF-8 text"))?;
    let publish = |dry_run: bool| pb::PublishAsyncApiRequest {
        actor: Some(caller.0.clone()),
        document: document.clone(),
        dry_run,
    };

    // Check first, then make sure every topic exists, then publish: a
    // refused document touches no cluster and writes nothing.
    let planned = state
        .catalog()
        .publish_asyncapi(publish(true))
        .await?
        .map_err(refused)?;
    for stream in &planned {
        let cluster_name = ClusterName::parse(stream.cluster.clone())
            .map_err(|e| ApiError::internal("planned stream names an invalid cluster", e))?;
        let cluster = state.cluster(&cluster_name)?;
        ensure_topic(cluster, &stream.topic, stream.partitions.max(1) as usize)
            .await
            .map_err(|e| {
                ApiError::kafka(
                    &format!("cannot create topic {} on {}", stream.topic, stream.cluster),
                    e,
                )
            })?;
    }
    let published = state
        .catalog()
        .publish_asyncapi(publish(false))
        .await?
        .map_err(refused)?;
    let streams: Vec<StreamView> = published.into_iter().map(StreamView::from).collect();
    Ok(Json(StreamList { streams }))
}

/// A published document, without its text.
#[derive(Debug, Serialize, ToSchema)]
pub struct AsyncApiDocumentSummary {
    id: String,
    owner: String,
    title: String,
    version: String,
    /// The streams the document described.
    streams: Vec<String>,
    published_at_ms: i64,
    published_by: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AsyncApiDocumentList {
    documents: Vec<AsyncApiDocumentSummary>,
}

/// The documents the caller may see: its organization's, or all for admins.
async fn documents(state: &AppState, caller: &Caller) -> ApiResult<Vec<pb::AsyncApiDocument>> {
    let owner = match caller.org() {
        Some(org) => org.to_string(),
        None if caller.is_admin() => String::new(),
        None => return Err(ApiError::forbidden("no organization")),
    };
    state.catalog().asyncapi_documents(owner).await
}

/// `GET /v1/asyncapi`: published documents, without their text.
#[utoipa::path(
    get,
    path = "/v1/asyncapi",
    operation_id = "publish_list",
    tag = "publishing",
    responses(
        (status = 200, body = AsyncApiDocumentList),
        crate::error::Failures,
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<AsyncApiDocumentList>> {
    let documents: Vec<_> = documents(&state, &caller)
        .await?
        .into_iter()
        .map(|d| AsyncApiDocumentSummary {
            id: d.id,
            owner: d.owner,
            title: d.title,
            version: d.version,
            streams: d.streams,
            published_at_ms: d.published_at_ms,
            published_by: d.published_by,
        })
        .collect();
    Ok(Json(AsyncApiDocumentList { documents }))
}

/// `GET /v1/asyncapi/{id}`: a document exactly as it was published.
#[utoipa::path(
    get,
    path = "/v1/asyncapi/{id}",
    operation_id = "publish_get_one",
    tag = "publishing",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "the document as published", content((String = "application/yaml"), (Object = "application/json"))),
        crate::error::Failures,
    ),
)]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let document = documents(&state, &caller)
        .await?
        .into_iter()
        .find(|d| d.id == id)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::RouteNotFound,
                format!("document {id:?} not found"),
            )
        })?;
    let content_type = if document.text.trim_start().starts_with('{') {
        "application/json"
    } else {
        "application/yaml"
    };
    Ok((
        [(axum::http::header::CONTENT_TYPE, content_type)],
        document.text,
    )
        .into_response())
}
