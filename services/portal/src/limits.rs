//! Per-contract rate limits: token buckets keyed by contract id, shared by
//! every request and feed of this portal under the same contract.
//!
//! Two budgets per contract:
//! - requests: every data-plane request under a contract takes one
//!   (`portal.contract_requests_per_second`, bursts of twice that); an
//!   empty bucket is 429 with `Retry-After`;
//! - records: the contract's `max_records_per_second`, when set. Push feeds
//!   wait for it (they are paced, never refused); a REST consumer's records
//!   request returns at most what the bucket holds, and 429 when it holds
//!   nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use freeport_common::error::ErrorCode;

use crate::error::ApiError;

/// A token bucket: `rate` tokens a second, at most `burst`.
#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant, rate: f64, burst: f64) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.at = now;
    }
}

/// How long until `missing` tokens have refilled at `rate`.
fn time_for(missing: f64, rate: f64) -> Duration {
    Duration::from_secs_f64((missing / rate).max(0.0))
}

/// Most push feeds (SSE or WebSocket) open at once under one contract in
/// one portal: each holds a Kafka consumer.
pub const MAX_FEEDS_PER_CONTRACT: usize = 16;

#[derive(Debug, Default)]
pub struct ContractLimits {
    requests_per_second: f64,
    requests: Mutex<HashMap<String, Bucket>>,
    records: Mutex<HashMap<String, Bucket>>,
    feeds: Mutex<HashMap<String, usize>>,
}

/// One open feed under a contract; closing it (dropping this) frees the
/// place.
#[derive(Debug)]
pub struct FeedPermit {
    limits: Arc<ContractLimits>,
    contract: String,
}

impl Drop for FeedPermit {
    fn drop(&mut self) {
        let mut feeds = self
            .limits
            .feeds
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(open) = feeds.get_mut(&self.contract) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                feeds.remove(&self.contract);
            }
        }
    }
}

impl ContractLimits {
    pub fn new(requests_per_second: u32) -> ContractLimits {
        ContractLimits {
            requests_per_second: f64::from(requests_per_second.max(1)),
            ..ContractLimits::default()
        }
    }

    /// Takes up to `wanted` tokens from `contract`'s bucket in `buckets`:
    /// how many it got, or how long until one is there.
    fn take(
        buckets: &Mutex<HashMap<String, Bucket>>,
        contract: &str,
        wanted: f64,
        rate: f64,
        burst: f64,
        now: Instant,
    ) -> Result<f64, Duration> {
        let mut buckets = buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = buckets.entry(contract.to_string()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        bucket.refill(now, rate, burst);
        if bucket.tokens < 1.0 {
            return Err(time_for(1.0 - bucket.tokens, rate));
        }
        let got = wanted.min(bucket.tokens.floor());
        bucket.tokens -= got;
        Ok(got)
    }

    /// Push feeds open under every contract.
    pub fn open_feeds(&self) -> usize {
        self.feeds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .sum()
    }

    /// One data-plane request under `contract`; 429 when its budget is spent.
    pub fn request(&self, contract: &str) -> Result<(), ApiError> {
        self.request_at(contract, Instant::now())
    }

    fn request_at(&self, contract: &str, now: Instant) -> Result<(), ApiError> {
        let rate = self.requests_per_second;
        Self::take(&self.requests, contract, 1.0, rate, 2.0 * rate, now)
            .map(|_| ())
            .map_err(|wait| {
                too_many(
                    format!("contract {contract} allows {rate} requests a second"),
                    wait,
                )
            })
    }

    /// How many records (at most `wanted`) may be read now under a contract
    /// allowing `per_second`; 429 when none.
    pub fn records(
        &self,
        contract: &str,
        per_second: u32,
        wanted: usize,
    ) -> Result<usize, ApiError> {
        self.records_at(contract, per_second, wanted, Instant::now())
    }

    fn records_at(
        &self,
        contract: &str,
        per_second: u32,
        wanted: usize,
        now: Instant,
    ) -> Result<usize, ApiError> {
        let rate = f64::from(per_second);
        Self::take(&self.records, contract, wanted as f64, rate, rate, now)
            .map(|got| got as usize)
            .map_err(|wait| {
                too_many(
                    format!("contract {contract} allows {per_second} records a second"),
                    wait,
                )
            })
    }

    /// A place for one more open feed under `contract`; 429 when it has
    /// [`MAX_FEEDS_PER_CONTRACT`] already.
    pub fn open_feed(self: &Arc<Self>, contract: &str) -> Result<FeedPermit, ApiError> {
        let mut feeds = self.feeds.lock().unwrap_or_else(PoisonError::into_inner);
        let open = feeds.entry(contract.to_string()).or_insert(0);
        if *open >= MAX_FEEDS_PER_CONTRACT {
            return Err(too_many(
                format!("contract {contract} has {MAX_FEEDS_PER_CONTRACT} feeds open, the most allowed; close one"),
                Duration::from_secs(1),
            ));
        }
        *open += 1;
        Ok(FeedPermit {
            limits: self.clone(),
            contract: contract.to_string(),
        })
    }

    /// Returns `unused` record tokens taken by [`Self::records`] but not
    /// spent.
    pub fn give_back(&self, contract: &str, unused: usize) {
        let mut buckets = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(bucket) = buckets.get_mut(contract) {
            bucket.tokens += unused as f64;
        }
    }

    /// Waits until one record may be delivered under a contract allowing
    /// `per_second`.
    pub async fn pace(&self, contract: &str, per_second: u32) {
        let rate = f64::from(per_second);
        loop {
            match Self::take(&self.records, contract, 1.0, rate, rate, Instant::now()) {
                Ok(_) => return,
                Err(wait) => tokio::time::sleep(wait.max(Duration::from_millis(1))).await,
            }
        }
    }
}

fn too_many(message: String, wait: Duration) -> ApiError {
    let mut error = ApiError::new(ErrorCode::TooManyRequests, message);
    error.retry_after = Some(wait);
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_burst_then_refill_at_the_rate() {
        let limits = ContractLimits::new(10);
        let start = Instant::now();
        for _ in 0..20 {
            limits.request_at("c1", start).unwrap();
        }
        let refused = limits.request_at("c1", start).unwrap_err();
        assert_eq!(refused.code, ErrorCode::TooManyRequests);
        let wait = refused.retry_after.unwrap();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        // Other contracts have their own budget.
        limits.request_at("c2", start).unwrap();
        // A tenth of a second later, one more.
        limits
            .request_at("c1", start + Duration::from_millis(100))
            .unwrap();
        assert!(limits
            .request_at("c1", start + Duration::from_millis(100))
            .is_err());
    }

    #[test]
    fn feeds_per_contract_are_capped_and_freed_when_closed() {
        let limits = Arc::new(ContractLimits::new(10));
        let open: Vec<_> = (0..MAX_FEEDS_PER_CONTRACT)
            .map(|_| limits.open_feed("c").unwrap())
            .collect();
        let refused = limits.open_feed("c").unwrap_err();
        assert_eq!(refused.code, ErrorCode::TooManyRequests);
        assert!(refused.retry_after.is_some());
        let other = limits.open_feed("d").unwrap();
        drop(open);
        drop(other);
        assert!(limits.feeds.lock().unwrap().is_empty());
        limits.open_feed("c").unwrap();
    }

    #[test]
    fn records_are_granted_up_to_the_budget() {
        let limits = ContractLimits::new(10);
        let start = Instant::now();
        assert_eq!(limits.records_at("c", 5, 100, start).unwrap(), 5);
        let refused = limits.records_at("c", 5, 100, start).unwrap_err();
        assert_eq!(refused.retry_after, Some(Duration::from_millis(200)));
        let later = start + Duration::from_secs(1);
        assert_eq!(limits.records_at("c", 5, 3, later).unwrap(), 3);
        assert_eq!(limits.records_at("c", 5, 100, later).unwrap(), 2);
    }
}
