//! The sync contract: one suite [`Lock`](super::Lock) and [`Leader`](super::Leader) pass on
//! every backend — each store, and etcd. Each check uses names of its own, so a shared engine
//! can run it. Waits for a TTL to pass leave room for etcd, whose leases are whole seconds
//! (at least 2) and which notices an expired lease within half a second.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use micro_core::contract::unique;
pub use micro_core::contract::{Clock, PausedClock, RealClock};

use super::{Leader, Lock, Locks};

/// Runs every check.
pub async fn run_all(locks: Locks, clock: impl Clock) {
    one_holder_at_a_time_among_many_contenders(&locks).await;
    fencing_tokens_increase(&locks).await;
    a_holder_that_stops_renewing_loses_the_lock(&locks, &clock).await;
    renewing_keeps_the_lock_and_a_lost_lock_cannot_be_renewed(&locks, &clock).await;
    one_leader_until_it_resigns(&locks).await;
}

/// 16 contenders, 3 turns each: never two inside at once, and every turn happens.
pub async fn one_holder_at_a_time_among_many_contenders(locks: &Locks) {
    let name = unique("mutex");
    let inside = Arc::new(AtomicBool::new(false));
    let turns = Arc::new(AtomicUsize::new(0));
    let contenders = (0..16).map(|_| {
        let lock = Lock::new(locks.clone(), &name, Duration::from_secs(30));
        let (inside, turns) = (inside.clone(), turns.clone());
        async move {
            for _ in 0..3 {
                let held = lock.acquire().await.expect("acquire");
                assert!(!inside.swap(true, Ordering::SeqCst), "two holders at once");
                tokio::task::yield_now().await;
                inside.store(false, Ordering::SeqCst);
                turns.fetch_add(1, Ordering::SeqCst);
                held.release().await.expect("release");
            }
        }
    });
    futures::future::join_all(contenders).await;
    assert_eq!(turns.load(Ordering::SeqCst), 48);
}

/// Each acquisition's token is larger than the one before.
pub async fn fencing_tokens_increase(locks: &Locks) {
    let lock = Lock::new(locks.clone(), &unique("fence"), Duration::from_secs(30));
    let mut last = 0;
    for _ in 0..5 {
        let held = lock.acquire().await.expect("acquire");
        assert!(held.token() > last, "{} after {last}", held.token());
        last = held.token();
        held.release().await.expect("release");
    }
}

/// A holder that stops renewing (a crashed process) holds the lock until its TTL passes, and
/// not after.
pub async fn a_holder_that_stops_renewing_loses_the_lock(locks: &Locks, clock: &impl Clock) {
    let name = unique("expiry");
    let ttl = Duration::from_millis(1500);
    let crashed = Lock::new(locks.clone(), &name, ttl)
        .acquire()
        .await
        .expect("acquire");
    let other = Lock::new(locks.clone(), &name, ttl);
    assert!(
        other.try_acquire().await.expect("try").is_none(),
        "held until the TTL passes"
    );
    clock.pass(Duration::from_millis(3500)).await;
    let next = other
        .try_acquire()
        .await
        .expect("try")
        .expect("free once the TTL passed");
    assert!(next.token() > crashed.token());
}

/// Renewing holds the lock past its first TTL; a holder whose lock was taken cannot renew.
pub async fn renewing_keeps_the_lock_and_a_lost_lock_cannot_be_renewed(
    locks: &Locks,
    clock: &impl Clock,
) {
    let name = unique("renew");
    let ttl = Duration::from_millis(2000);
    let held = Lock::new(locks.clone(), &name, ttl)
        .acquire()
        .await
        .expect("acquire");
    clock.pass(Duration::from_millis(1200)).await;
    held.renew().await.expect("renew in time");
    clock.pass(Duration::from_millis(1200)).await;
    let other = Lock::new(locks.clone(), &name, ttl);
    assert!(other.try_acquire().await.expect("try").is_none(), "renewed");
    clock.pass(Duration::from_millis(3000)).await;
    let taken = other.try_acquire().await.expect("try").expect("expired");
    assert_eq!(held.renew().await.unwrap_err().code, 409, "lost");
    taken.release().await.expect("release");
}

/// One leader at a time; resigning hands over at once, with a larger token.
pub async fn one_leader_until_it_resigns(locks: &Locks) {
    let name = unique("leader");
    let first = Leader::new(locks.clone(), &name, Duration::from_secs(30));
    let second = Leader::new(locks.clone(), &name, Duration::from_secs(30));
    let term = first.elect().await.expect("elect");
    let waiting = tokio::spawn(async move { second.elect().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "no second leader");
    let token = term.token();
    term.resign().await.expect("resign");
    let next = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the second leads once the first resigned")
        .expect("task")
        .expect("elect");
    assert!(next.token() > token);
}
