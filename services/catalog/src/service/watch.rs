//! Watch: every change after a revision, then live ones, without gaps or
//! repeats.

use std::sync::Arc;

use futures::Stream as FuturesStream;
use tokio::sync::broadcast;

use super::{Catalog, CATCH_UP_PAGE};
use crate::domain::Event;
use crate::error::CatalogError;

impl Catalog {
    /// Every event after `after`, then live events, without gaps or repeats.
    /// Ends when the catalog shuts down.
    pub fn watch(
        self: &Arc<Self>,
        after: u64,
    ) -> impl FuturesStream<Item = Result<Event, CatalogError>> + Send + 'static {
        let mut live = self.events.subscribe();
        let catalog = self.clone();
        async_stream::try_stream! {
            let mut last = after;
            'outer: loop {
                // Catch up from the change log: it holds everything committed,
                // including what was broadcast before we subscribed.
                loop {
                    let store = catalog.store.clone();
                    let page = tokio::task::spawn_blocking(move || store.events_after(last, CATCH_UP_PAGE))
                        .await
                        .map_err(|e| CatalogError::Store(crate::store::StoreError::Backend(e.to_string())))??;
                    if page.is_empty() {
                        break;
                    }
                    for event in page {
                        last = event.revision;
                        yield event;
                    }
                }
                loop {
                    let received = tokio::select! {
                        _ = catalog.shutdown.cancelled() => break 'outer,
                        received = live.recv() => received,
                    };
                    match received {
                        Ok(event) if event.revision <= last => continue,
                        Ok(event) if event.revision == last + 1 => {
                            last = event.revision;
                            yield event;
                        }
                        // A gap or an overflow: the log has what we missed.
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue 'outer,
                        Err(broadcast::error::RecvError::Closed) => break 'outer,
                    }
                }
            }
        }
    }
}
