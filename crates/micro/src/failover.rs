//! Several servers behind one client: `MICRO_SERVER_ADDRESS=a:8081,b:8081`.
//!
//! Servers sharing engines are interchangeable, so a client balances its calls over all of
//! them — tonic's balancing channel — and a prober takes a server out of the balance when it
//! stops accepting connections and puts it back when it accepts them again. A server that dies
//! therefore costs a client at most the calls it sent there in the prober's last interval;
//! heartbeats, calls and re-subscriptions after that go to the servers that answer.

use std::time::Duration;

use micro_core::Error;
use tokio::sync::mpsc::Sender;
use tonic::transport::{Channel, Endpoint, channel::Change};

/// How often each server is probed.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// How long a probe waits for a connection.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// The servers of a comma-separated list, each once, in order.
pub fn addresses(list: &str) -> Result<Vec<String>, Error> {
    let mut out: Vec<String> = Vec::new();
    for address in list.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        if !out.iter().any(|a| a == address) {
            out.push(address.to_owned());
        }
    }
    if out.is_empty() {
        return Err(Error::bad_request(
            "micro.client",
            format!("no server address in {list:?}"),
        ));
    }
    Ok(out)
}

/// Which servers to add to (`true`) or remove from (`false`) the balance, given which answer
/// now (`alive`) and which are in it (`inside`). A server that answers goes in; one that does
/// not goes out, unless none answers — then all stay, so calls fail with the servers' own
/// errors rather than for want of a server.
pub fn plan(alive: &[bool], inside: &[bool]) -> Vec<(usize, bool)> {
    let any_alive = alive.iter().any(|a| *a);
    alive
        .iter()
        .zip(inside)
        .enumerate()
        .filter_map(|(i, (&alive, &inside))| {
            let want = alive || !any_alive;
            (want != inside).then_some((i, want))
        })
        .collect()
}

/// A channel balanced over `endpoints` (one per address), kept to the live ones by a prober
/// while the channel is in use.
pub(crate) fn channel(addresses: &[String], endpoints: Vec<Endpoint>) -> Channel {
    let (channel, changes) = Channel::balance_channel::<usize>(endpoints.len().max(1) * 2);
    for (i, endpoint) in endpoints.iter().enumerate() {
        let _ = changes.try_send(Change::Insert(i, endpoint.clone()));
    }
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(probe(addresses.to_vec(), endpoints, changes));
    }
    channel
}

async fn probe(
    addresses: Vec<String>,
    endpoints: Vec<Endpoint>,
    changes: Sender<Change<usize, Endpoint>>,
) {
    let mut inside = vec![true; addresses.len()];
    let mut tick = tokio::time::interval(PROBE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = changes.closed() => return,
            _ = tick.tick() => {}
        }
        let alive = futures::future::join_all(addresses.iter().map(|a| answers(a))).await;
        for (i, add) in plan(&alive, &inside) {
            let change = if add {
                Change::Insert(i, endpoints[i].clone())
            } else {
                Change::Remove(i)
            };
            if changes.send(change).await.is_err() {
                return;
            }
            inside[i] = add;
        }
    }
}

/// Whether the server at `address` accepts a connection now.
async fn answers(address: &str) -> bool {
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(address)).await,
        Ok(Ok(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_split_trimmed_and_deduplicated() {
        assert_eq!(addresses(" a:1, b:2,a:1,").unwrap(), ["a:1", "b:2"]);
        assert_eq!(addresses(" , ").unwrap_err().code, 400);
    }

    #[test]
    fn dead_servers_leave_the_balance_and_come_back_unless_all_are_dead() {
        assert_eq!(plan(&[true, false], &[true, true]), [(1, false)]);
        assert_eq!(plan(&[true, true], &[true, false]), [(1, true)]);
        assert!(plan(&[false, false], &[true, true]).is_empty());
        assert_eq!(plan(&[false, false], &[true, false]), [(1, true)]);
        assert!(plan(&[true], &[true]).is_empty());
    }
}
