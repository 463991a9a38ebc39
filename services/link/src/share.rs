//! This link's side of sharing the contracts with the other link processes
//! (the catalog's `links` module holds the rules).
//!
//! The link may mirror what the catalog assigned it until its lease ends.
//! The lease is counted from when the call was *sent*, and the link stops
//! its mirrors a quarter of the lease early, so it has stopped before the
//! catalog, counting from when it *received* the call, hands the contracts
//! to another link. A link that cannot reach the catalog therefore stops
//! mirroring: the price of never mirroring a contract twice.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often to call in before the catalog has said how long leases are.
pub const FIRST_RENEWAL: Duration = Duration::from_millis(500);

/// The grant this link holds and the token its mirrors stop by.
#[derive(Clone)]
pub struct Lease {
    /// Until when the link may mirror what it was assigned.
    deadline: watch::Sender<Instant>,
    /// Cancelled when the deadline passes unrenewed; every mirror's own
    /// token is a child of the one current when it started.
    token: Arc<Mutex<CancellationToken>>,
    /// The catalog's lease, once it has answered.
    lease: Arc<Mutex<Option<Duration>>>,
}

impl Lease {
    /// No grant yet; the guard that enforces deadlines runs until `shutdown`.
    pub fn new(shutdown: CancellationToken) -> Lease {
        let lease = Lease {
            deadline: watch::Sender::new(Instant::now()),
            token: Arc::new(Mutex::new(CancellationToken::new())),
            lease: Arc::new(Mutex::new(None)),
        };
        tokio::spawn(lease.clone().guard(shutdown));
        lease
    }

    /// The catalog granted a lease of `lease` on a call sent at `sent`.
    pub fn renewed(&self, sent: Instant, lease: Duration) {
        *self.lease.lock().unwrap_or_else(PoisonError::into_inner) = Some(lease);
        let mut token = self.token.lock().unwrap_or_else(PoisonError::into_inner);
        if token.is_cancelled() {
            *token = CancellationToken::new();
        }
        self.deadline.send_replace(sent + lease - lease / 4);
    }

    /// Whether the grant still holds.
    pub fn valid(&self) -> bool {
        *self.deadline.borrow() > Instant::now()
            && !self
                .token
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_cancelled()
    }

    /// The token a mirror started now stops by (with the lease, or sooner).
    pub fn mirror_token(&self) -> CancellationToken {
        self.token
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .child_token()
    }

    /// How long until the next call: a quarter of the lease.
    pub fn renewal_interval(&self) -> Duration {
        self.lease
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map_or(FIRST_RENEWAL, |lease| lease / 4)
    }

    /// Cancels the mirrors' token whenever the deadline passes unrenewed.
    async fn guard(self, shutdown: CancellationToken) {
        let mut deadlines = self.deadline.subscribe();
        loop {
            let deadline = *deadlines.borrow_and_update();
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = deadlines.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    let token = self.token.lock().unwrap_or_else(PoisonError::into_inner).clone();
                    if !token.is_cancelled() && *self.deadline.borrow() <= Instant::now() {
                        // Before the first grant there is nothing to run out.
                        if self.lease.lock().unwrap_or_else(PoisonError::into_inner).is_some() {
                            tracing::warn!("lease from the catalog ran out; stopping every mirror until it is renewed");
                        }
                        token.cancel();
                    }
                    // Nothing to do until the next renewal.
                    if deadlines.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}
