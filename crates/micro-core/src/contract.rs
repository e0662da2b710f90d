//! What every contract suite shares: how a suite lets time pass, and names no other run uses.
//!
//! A suite works in databases or namespaces of its own (see [`unique`]), so a shared engine can
//! run it while holding other data.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

/// How a suite lets time pass.
pub trait Clock: Send + Sync {
    /// Lets `d` pass.
    fn pass(&self, d: Duration) -> impl Future<Output = ()> + Send;
}

/// Advances tokio's paused clock (use with `#[tokio::test(start_paused = true)]`).
#[derive(Debug, Clone, Copy)]
pub struct PausedClock;

impl Clock for PausedClock {
    async fn pass(&self, d: Duration) {
        tokio::time::advance(d).await;
    }
}

/// Waits on the wall clock, for backends whose expiry happens outside this process.
#[derive(Debug, Clone, Copy)]
pub struct RealClock;

impl Clock for RealClock {
    async fn pass(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
}

/// A name no other check or run uses: `contract-<label>-<nanos>-<n>`.
pub fn unique(label: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "contract-{label}-{nanos}-{}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
