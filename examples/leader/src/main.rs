//! Leader election (`micro::sync`): run it twice against one server (or several sharing
//! engines), and one process leads; `kill -9` it, and the other leads within the TTL, with a
//! larger fencing token. The election runs on the platform store, or on etcd with
//! `MICRO_SYNC=etcd MICRO_SYNC_ADDRESS=127.0.0.1:2379`.
//!
//! ```sh
//! LEADER_TTL=3s cargo run -p leader &   # "leading with token 1"
//! LEADER_TTL=3s cargo run -p leader &   # waits
//! kill -9 %1                            # the second: "leading with token 2"
//! ```

use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), micro::Error> {
    micro::init_tracing();
    let ttl = std::env::var("LEADER_TTL")
        .ok()
        .and_then(|t| humantime::parse_duration(&t).ok())
        .unwrap_or(Duration::from_secs(10));
    let store = micro::store::Store::from_env("leader")?;
    let locks = micro::sync::Locks::from_env("leader")?;
    let election = micro::sync::Leader::new(locks, "reports", ttl);
    println!("waiting to lead (ttl {ttl:?})");
    let mut term = election.elect().await?;
    println!("leading with token {}", term.token());
    // The fencing token goes with every write the leader makes, so a resource can tell a
    // stale leader's write from the current one's.
    store
        .write("last-leader", term.token().to_string().into_bytes())
        .await?;
    tokio::select! {
        () = term.lost() => {
            println!("lost leadership");
            Ok(())
        }
        () = micro::service::shutdown_signal() => {
            term.resign().await?;
            println!("resigned");
            Ok(())
        }
    }
}
