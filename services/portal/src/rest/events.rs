//! Push consumption over HTTP: `GET /v1/streams/{name}/events`, as
//! Server-Sent Events or, when the request asks to upgrade, as a WebSocket.
//!
//! Each record carries the reader's whole position as its id, so a
//! reconnect with `Last-Event-ID` (browsers send it by themselves for SSE)
//! or `?last_event_id=` resumes exactly after the last record received, on
//! any portal instance. When the contract stops being active the feed says
//! why (`closed`) and ends.
//!
//! Over a WebSocket every message is a JSON text message:
//! `{"type": "record", "id": "0:12,1:7", "record": {...}}`, and last
//! `{"type": "closed", "reason": "..."}`, followed by a close frame whose
//! code tells the client whether to reconnect: 1008 (policy) when the
//! contract is no longer active, 1001 when the portal is shutting down,
//! 1011 when reading failed.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, HeaderMap};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, ApiQuery, Caller};
use crate::push::{self, Ending, From, Item};
use crate::AppState;

/// How often an idle WebSocket is pinged, so proxies keep it open and a
/// dead peer is noticed.
const PING_EVERY: Duration = Duration::from_secs(15);

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// `beginning` (the default) or `end`: where partitions the position
    /// does not name start.
    #[serde(default)]
    #[param(pattern = "^(beginning|end)$")]
    from: Option<String>,
    /// The position to resume from, for clients that cannot set the
    /// `Last-Event-ID` header; the header wins when both are given.
    #[serde(default)]
    last_event_id: Option<String>,
}

fn wants_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

#[utoipa::path(
    get,
    path = "/v1/streams/{name}/events",
    operation_id = "events_events",
    tag = "push",
    params(("name" = crate::openapi::Identifier, Path), EventsQuery, ("Last-Event-ID" = Option<String>, Header, description = "the id of the last event received: resume right after it")),
    responses(
        (status = 200, description = "Server-Sent Events: `record` events (data: the record as JSON, id: the reader's position) and a last `closed` event; with `Upgrade: websocket`, the same as JSON text messages", content_type = "text/event-stream"),
        (status = 101, description = "switched to a WebSocket"),
        crate::error::Failures,
    ),
)]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<EventsQuery>,
    request: Request,
) -> ApiResult<Response> {
    caller.require_org("read a stream's records")?;
    let from = match query.from.as_deref() {
        None | Some("beginning") => From::Beginning,
        Some("end") => From::End,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "from must be \"beginning\" or \"end\", not {other:?}"
            )))
        }
    };
    let (mut parts, _) = request.into_parts();
    let header = match parts.headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| ApiError::invalid("Last-Event-ID is not text"))?
                .to_string(),
        ),
        None => None,
    };
    let last_event_id = header.or(query.last_event_id);
    // Checked before any upgrade, so a refusal is an ordinary HTTP error.
    let upgrade = if wants_websocket(&parts.headers) {
        let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &state)
            .await
            .map_err(|rejection| {
                ApiError::invalid(format!(
                    "invalid WebSocket upgrade: {}",
                    rejection.body_text()
                ))
            })?;
        Some(upgrade)
    } else {
        None
    };
    let feed = push::open(&state, &caller, &name, last_event_id.as_deref(), from).await?;
    let org = caller.org().unwrap_or_default();
    let transport = if upgrade.is_some() {
        "websocket"
    } else {
        "sse"
    };
    tracing::info!(contract = %feed.contract_id(), stream = %name, %org, transport, "push feed opened");
    let items = feed.into_stream(transport);
    if let Some(upgrade) = upgrade {
        return Ok(upgrade.on_upgrade(move |socket| over_websocket(socket, items)));
    }
    let events = items.map(|item| {
        Ok::<_, Infallible>(match item {
            Item::Record { id, record } => Event::default()
                .event("record")
                .id(id)
                .data(record.to_string()),
            Item::Closed { reason, .. } => Event::default()
                .event("closed")
                .data(json!({ "reason": reason }).to_string()),
        })
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// Sends the feed's items over `socket` until the feed ends or the client
/// goes away; what the client sends is ignored (pings are answered).
async fn over_websocket(mut socket: WebSocket, items: impl Stream<Item = Item> + Send) {
    let mut items = std::pin::pin!(items);
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        let outgoing = tokio::select! {
            item = items.next() => match item {
                Some(item) => item,
                None => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => continue,
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
                continue;
            }
        };
        let (text, close) = match outgoing {
            Item::Record { id, record } => {
                (json!({"type": "record", "id": id, "record": record}), None)
            }
            Item::Closed { ending, reason } => {
                // A close frame's reason is at most 123 bytes; the full
                // reason goes in the `closed` message before it.
                let close = match ending {
                    Ending::NotActive => (1008, "contract not active"),
                    Ending::Shutdown => (1001, "portal shutting down"),
                    Ending::Failed => (1011, "reading the stream failed"),
                    Ending::Withdrawn => (1008, "credential withdrawn"),
                };
                (json!({"type": "closed", "reason": reason}), Some(close))
            }
        };
        if socket
            .send(Message::Text(text.to_string().into()))
            .await
            .is_err()
        {
            return;
        }
        if let Some((code, reason)) = close {
            let frame = CloseFrame {
                code,
                reason: reason.into(),
            };
            let _ = socket.send(Message::Close(Some(frame))).await;
            return;
        }
    }
}
