//! [`Leader`]: election on a [`Lock`] held for as long as the process runs.

use std::time::Duration;

use micro_core::Error;
use tokio::{sync::watch, task::JoinHandle};

use super::{Lock, Locks};

/// Leader election among every process that shares a store and a name.
#[derive(Debug, Clone)]
pub struct Leader {
    lock: Lock,
    ttl: Duration,
}

/// One term of leadership: renewed in the background every third of the TTL until it is
/// resigned, dropped, or lost.
#[derive(Debug)]
pub struct Term {
    token: u64,
    lost: watch::Receiver<bool>,
    renewing: JoinHandle<()>,
    resign: Option<super::Held>,
}

impl Leader {
    /// An election named `name` where `locks` keep locks (a [`Store`](super::Store)'s table,
    /// or [`Locks::etcd`]); a leader that stops renewing (a crash) is replaced once `ttl`
    /// passes.
    pub fn new(locks: impl Into<Locks>, name: &str, ttl: Duration) -> Self {
        Self {
            lock: Lock::new(locks, &format!("leader/{name}"), ttl),
            ttl,
        }
    }

    /// Waits until this process leads, and leads.
    pub async fn elect(&self) -> Result<Term, Error> {
        let held = self.lock.acquire().await?;
        let (lost_tx, lost) = watch::channel(false);
        let every = (self.ttl / 3).max(Duration::from_millis(1));
        let renewer = super::Held {
            lock: held.lock().clone(),
            holder: held.holder.clone(),
            token: held.token(),
        };
        let ttl = self.ttl;
        let renewing = tokio::spawn(async move {
            // Leadership is certain until the TTL after the last renewal that began before the
            // store said yes; past that, another may lead, whatever the store says later.
            let mut held_until = tokio::time::Instant::now() + ttl;
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let started = tokio::time::Instant::now();
                match tokio::time::timeout(every, renewer.renew()).await {
                    Ok(Ok(())) => held_until = started + ttl,
                    Ok(Err(e)) if e.code == 409 => {
                        tracing::warn!(lock = %renewer.lock().name(), "leadership lost: {e}");
                        let _ = lost_tx.send(true);
                        return;
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(lock = %renewer.lock().name(), "renewing leadership: {e}");
                    }
                    Err(_) => {
                        tracing::warn!(lock = %renewer.lock().name(), "renewing leadership timed out");
                    }
                }
                if tokio::time::Instant::now() + every >= held_until {
                    tracing::warn!(
                        lock = %renewer.lock().name(),
                        "leadership lost: not renewed within its TTL"
                    );
                    let _ = lost_tx.send(true);
                    return;
                }
            }
        });
        Ok(Term {
            token: held.token(),
            lost,
            renewing,
            resign: Some(held),
        })
    }
}

impl Term {
    /// The term's fencing token: larger than every earlier leader's.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// Resolves when leadership is lost (renewing failed).
    pub async fn lost(&mut self) {
        let _ = self.lost.wait_for(|lost| *lost).await;
    }

    /// Steps down now, so another can lead without waiting for the TTL.
    pub async fn resign(mut self) -> Result<(), Error> {
        self.renewing.abort();
        match self.resign.take() {
            Some(held) => held.release().await,
            None => Ok(()),
        }
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        self.renewing.abort();
    }
}
