//! Push consumption over HTTP: `GET /v1/streams/{name}/events` as
//! Server-Sent Events. Each record is an event `record` whose id is the
//! reader's whole position, so a reconnect with `Last-Event-ID` (browsers
//! send it by themselves) resumes exactly after the last event received, on
//! any portal instance. When the contract stops being active the feed sends
//! an event `closed` with the reason and ends.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, ApiQuery, Caller};
use crate::push::{self, From, Item};
use crate::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// `beginning` (the default) or `end`: where partitions the position
    /// does not name start.
    #[serde(default)]
    from: Option<String>,
    /// The position to resume from, for clients that cannot set the
    /// `Last-Event-ID` header; the header wins when both are given.
    #[serde(default)]
    last_event_id: Option<String>,
}

pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<EventsQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let org = caller.require_org("read a stream's records")?.to_string();
    let from = match query.from.as_deref() {
        None | Some("beginning") => From::Beginning,
        Some("end") => From::End,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "from must be \"beginning\" or \"end\", not {other:?}"
            )))
        }
    };
    let header = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| ApiError::invalid("Last-Event-ID is not text"))?
                .to_string(),
        ),
        None => None,
    };
    let last_event_id = header.or(query.last_event_id);
    let stream = state.catalog().get_stream_for(&name, caller.0).await?;
    let feed = push::open(&state, &org, &stream, last_event_id.as_deref(), from).await?;
    tracing::info!(contract = %feed.contract_id(), stream = %name, %org, "push feed opened");
    let events = feed.into_stream().map(|item| {
        Ok::<_, Infallible>(match item {
            Item::Record { id, record } => Event::default()
                .event("record")
                .id(id)
                .data(record.to_string()),
            Item::Closed { reason } => Event::default()
                .event("closed")
                .data(json!({ "reason": reason }).to_string()),
        })
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}
