//! Locks on etcd: a lock is a key attached to a lease of the TTL, created only if the key does
//! not exist (a transaction comparing its create revision with 0). Renewing keeps the lease
//! alive; releasing revokes it, which deletes the key; a holder that dies (`kill -9`) stops
//! renewing, and etcd deletes the key when the lease runs out.
//!
//! The fencing token is the revision that created the key: etcd's revisions only grow, so
//! every later holder's is larger. Lease TTLs are whole seconds, at least etcd's own minimum
//! (2 s with its default timing), so a shorter TTL is rounded up.

use std::time::Duration;

use async_trait::async_trait;
use micro_core::Error;
use micro_proto::etcd::{
    Compare, LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest, PutRequest,
    RangeRequest, RequestOp, TxnRequest,
    client::{self, segment},
    compare,
    kv_client::KvClient,
    lease_client::LeaseClient,
    request_op,
};
use tonic::transport::Channel;

use super::backend::{Grant, LockBackend, Locks};

const ID: &str = "micro.sync";

/// The etcd-backed [`LockBackend`]: keys under `/micro/sync/NAMESPACE/TABLE/`.
#[derive(Debug)]
struct OnEtcd {
    channel: Channel,
    prefix: String,
}

fn status(e: tonic::Status) -> Error {
    match e.code() {
        tonic::Code::InvalidArgument => {
            Error::bad_request(ID, format!("etcd refused it: {}", e.message()))
        }
        _ => Error::unavailable(ID, format!("etcd: {}", e.message())),
    }
}

impl Locks {
    /// Locks on etcd at the comma-separated client `addresses` (`host:port` or URLs), kept
    /// apart by `namespace` and `table` as the store keeps its tables. Connects on first use.
    pub fn etcd(addresses: &str, namespace: &str, table: &str) -> Result<Self, Error> {
        Ok(Self::custom(OnEtcd {
            channel: client::channel(addresses).map_err(|e| Error::bad_request(ID, e))?,
            prefix: format!("/micro/sync/{}/{}/", segment(namespace), segment(table)),
        }))
    }
}

impl OnEtcd {
    fn key(&self, name: &str) -> Vec<u8> {
        format!("{}{}", self.prefix, segment(name)).into_bytes()
    }

    async fn revoke(&self, lease: i64) -> Result<(), Error> {
        match LeaseClient::new(self.channel.clone())
            .lease_revoke(LeaseRevokeRequest { id: lease })
            .await
        {
            Ok(_) => Ok(()),
            // Already gone: its TTL passed.
            Err(e) if e.code() == tonic::Code::NotFound => Ok(()),
            Err(e) => Err(status(e)),
        }
    }
}

fn lease_id(holder: &str) -> Result<i64, Error> {
    holder
        .parse()
        .map_err(|_| Error::bad_request(ID, format!("{holder:?} is not an etcd lease")))
}

#[async_trait]
impl LockBackend for OnEtcd {
    async fn try_acquire(&self, name: &str, ttl: Duration) -> Result<Option<Grant>, Error> {
        let key = self.key(name);
        // Held already: a read, so waiters polling cost etcd no writes (a lease and a
        // transaction are only spent on a lock that looks free).
        let held = KvClient::new(self.channel.clone())
            .range(RangeRequest {
                key: key.clone(),
                count_only: true,
                ..RangeRequest::default()
            })
            .await
            .map_err(status)?
            .into_inner()
            .count
            > 0;
        if held {
            return Ok(None);
        }
        let seconds = client::lease_seconds(ttl);
        let lease = LeaseClient::new(self.channel.clone())
            .lease_grant(LeaseGrantRequest {
                ttl: seconds,
                id: 0,
            })
            .await
            .map_err(status)?
            .into_inner();
        if !lease.error.is_empty() {
            return Err(Error::unavailable(ID, format!("etcd: {}", lease.error)));
        }
        let created = KvClient::new(self.channel.clone())
            .txn(TxnRequest {
                compare: vec![Compare {
                    result: compare::CompareResult::Equal.into(),
                    target: compare::CompareTarget::Create.into(),
                    key: key.clone(),
                    target_union: Some(compare::TargetUnion::CreateRevision(0)),
                }],
                success: vec![RequestOp {
                    request: Some(request_op::Request::RequestPut(PutRequest {
                        key,
                        value: lease.id.to_string().into_bytes(),
                        lease: lease.id,
                        ..PutRequest::default()
                    })),
                }],
                failure: Vec::new(),
            })
            .await;
        let created = match created {
            Ok(response) => response.into_inner(),
            Err(e) => {
                let _ = self.revoke(lease.id).await;
                return Err(status(e));
            }
        };
        if !created.succeeded {
            // Taken meanwhile. The lease holds nothing; should revoking it fail, it lapses.
            let _ = self.revoke(lease.id).await;
            return Ok(None);
        }
        // The revision that created the key is the fencing token: it only grows.
        let token = created
            .header
            .and_then(|h| u64::try_from(h.revision).ok())
            .filter(|revision| *revision > 0);
        let Some(token) = token else {
            let _ = self.revoke(lease.id).await;
            return Err(Error::unavailable(
                ID,
                "etcd answered the lock's transaction without its revision",
            ));
        };
        Ok(Some(Grant {
            holder: lease.id.to_string(),
            token,
        }))
    }

    async fn renew(&self, _name: &str, _ttl: Duration, holder: &str) -> Result<bool, Error> {
        let id = lease_id(holder)?;
        let mut answers = LeaseClient::new(self.channel.clone())
            .lease_keep_alive(futures::stream::iter([LeaseKeepAliveRequest { id }]))
            .await
            .map_err(status)?
            .into_inner();
        match answers.message().await.map_err(status)? {
            // etcd answers a lease that ran out (and so lost its key) with a TTL of 0.
            Some(answer) => Ok(answer.ttl > 0),
            None => Err(Error::unavailable(
                ID,
                "etcd closed the keep-alive unanswered",
            )),
        }
    }

    async fn release(&self, _name: &str, holder: &str) -> Result<(), Error> {
        self.revoke(lease_id(holder)?).await
    }
}
