//! [`Pipes`]: publishing over one `PublishStream` per namespace instead of a call per message.
//!
//! A unary call costs a request's whole round of HTTP/2 stream set-up, headers and trailers;
//! on a stream, a message costs its own bytes, and tonic writes whatever is queued in one go.
//! So [`RemoteBroker::publish`](super::RemoteBroker) hands each message to the namespace's
//! pipe and waits for its acknowledgement, which the server sends in order: many publishers
//! share one stream, each still told whether its own message was published.
//!
//! A pipe is opened with the process's token of the moment and opened again when the token
//! changes. A message that never reached a pipe (it had closed) is sent again on a new one;
//! one that was on a stream that broke fails with the connection's error, as a unary call
//! would. A server without `PublishStream` is remembered, and publishing goes back to unary
//! calls.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use micro_core::Error;
use micro_proto::broker::{self as pb, broker_client::BrokerClient};
use tokio::sync::{mpsc, oneshot};
use tonic::transport::Channel;

use crate::remote::Connection;

use super::ID;

/// The most messages a pipe keeps unanswered; the server answers up to 1,024 without waiting.
const WINDOW: usize = 512;

/// The largest message sent through a pipe; larger ones go as a call of their own.
pub(super) const LARGEST: usize = 64 * 1024;

/// One message for a pipe, and where its answer goes.
type Job = (pb::PublishRequest, oneshot::Sender<Outcome>);

/// What became of a message given to a pipe.
enum Outcome {
    /// The server answered (or the stream broke while the message was on it).
    Answered(Result<(), Error>),
    /// It never left: the pipe closed first. It may be sent on another.
    Unsent(pb::PublishRequest),
}

/// An open pipe: where messages go, and the token it was opened with.
struct Pipe {
    jobs: mpsc::Sender<Job>,
    token: Option<String>,
}

/// The pipes of one [`RemoteBroker`](super::RemoteBroker), by namespace.
#[derive(Clone, Default)]
pub(super) struct Pipes {
    open: Arc<Mutex<HashMap<String, Pipe>>>,
    /// Set once the server answers `PublishStream` with UNIMPLEMENTED.
    unsupported: Arc<AtomicBool>,
}

impl std::fmt::Debug for Pipes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipes").finish_non_exhaustive()
    }
}

/// What [`Pipes::publish`] did.
pub(super) enum Sent {
    /// Published, or refused with this error.
    Answered(Result<(), Error>),
    /// The server has no `PublishStream`: publish with a unary call.
    Unsupported(pb::PublishRequest),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Pipes {
    /// Publishes `message` in `namespace` through its pipe, opening one if needed.
    pub(super) async fn publish(
        &self,
        conn: &Connection,
        client: &BrokerClient<Channel>,
        namespace: &str,
        mut message: pb::PublishRequest,
    ) -> Sent {
        // The second try is for a pipe that closed before it took the message.
        for _ in 0..2 {
            if self.unsupported.load(Ordering::Relaxed) {
                return Sent::Unsupported(message);
            }
            let jobs = match self.pipe(conn, client, namespace).await {
                Ok(Some(jobs)) => jobs,
                Ok(None) => return Sent::Unsupported(message),
                Err(e) => return Sent::Answered(Err(e)),
            };
            let (done, answer) = oneshot::channel();
            if let Err(mpsc::error::SendError((back, _))) = jobs.send((message, done)).await {
                message = back;
                self.forget(namespace, &jobs);
                continue;
            }
            match answer.await {
                Ok(Outcome::Answered(result)) => return Sent::Answered(result),
                Ok(Outcome::Unsent(back)) => {
                    message = back;
                    self.forget(namespace, &jobs);
                }
                Err(_) => {
                    return Sent::Answered(Err(Error::unavailable(
                        ID,
                        "the publish stream ended unanswered",
                    )));
                }
            }
        }
        Sent::Answered(Err(Error::unavailable(
            ID,
            format!(
                "Failed to connect to micro server at {}: the publish stream keeps closing",
                conn.address()
            ),
        )))
    }

    /// Drops `jobs` as the pipe of `namespace`, unless another replaced it already.
    fn forget(&self, namespace: &str, jobs: &mpsc::Sender<Job>) {
        let mut open = lock(&self.open);
        if open
            .get(namespace)
            .is_some_and(|p| p.jobs.same_channel(jobs))
        {
            open.remove(namespace);
        }
    }

    /// The open pipe of `namespace` (opened now if there is none, it closed, or the token
    /// changed); `None` if the server has no `PublishStream`.
    async fn pipe(
        &self,
        conn: &Connection,
        client: &BrokerClient<Channel>,
        namespace: &str,
    ) -> Result<Option<mpsc::Sender<Job>>, Error> {
        if conn.credentials().is_process() {
            crate::auth::from_env().await?;
        }
        let token = conn.credentials().token();
        if let Some(pipe) = lock(&self.open).get(namespace)
            && !pipe.jobs.is_closed()
            && pipe.token == token
        {
            return Ok(Some(pipe.jobs.clone()));
        }
        let (requests, outgoing) = mpsc::channel(WINDOW);
        let mut request = conn
            .request(
                namespace,
                tokio_stream::wrappers::ReceiverStream::new(outgoing),
            )
            .await?;
        // The stream outlives the call that opened it: each message carries its own trace.
        request.metadata_mut().remove(crate::trace::TRACEPARENT);
        let acks = match client.clone().publish_stream(request).await {
            Ok(response) => response.into_inner(),
            Err(status) if status.code() == tonic::Code::Unimplemented => {
                self.unsupported.store(true, Ordering::Relaxed);
                return Ok(None);
            }
            Err(status) => return Err(conn.error(ID, &status)),
        };
        let (jobs, incoming) = mpsc::channel(WINDOW);
        tokio::spawn(run(incoming, requests, acks, conn.clone()));
        lock(&self.open).insert(
            namespace.to_owned(),
            Pipe {
                jobs: jobs.clone(),
                token,
            },
        );
        Ok(Some(jobs))
    }
}

/// Moves messages from `jobs` onto the stream and answers each from its acknowledgement, in
/// order, until every publisher has let the pipe go and every message is answered, or the
/// stream breaks (then every message still waiting fails with its error).
async fn run(
    mut jobs: mpsc::Receiver<Job>,
    requests: mpsc::Sender<pb::PublishRequest>,
    mut acks: tonic::Streaming<pb::PublishAck>,
    conn: Connection,
) {
    let mut waiting: VecDeque<oneshot::Sender<Outcome>> = VecDeque::new();
    let mut requests = Some(requests);
    let failure = loop {
        tokio::select! {
            job = jobs.recv(), if requests.is_some() && waiting.len() < WINDOW => match job {
                Some((message, done)) => {
                    let Some(to) = &requests else {
                        let _ = done.send(Outcome::Unsent(message));
                        break None;
                    };
                    if let Err(mpsc::error::SendError(message)) = to.send(message).await {
                        let _ = done.send(Outcome::Unsent(message));
                        break None;
                    }
                    waiting.push_back(done);
                }
                // Every publisher let go: end the stream once the rest is answered.
                None => {
                    requests = None;
                    if waiting.is_empty() {
                        break None;
                    }
                }
            },
            ack = acks.message(), if !waiting.is_empty() => match ack {
                Ok(Some(ack)) => {
                    let answer = if ack.code == 0 {
                        Ok(())
                    } else {
                        Err(Error::new(ID, u16::try_from(ack.code).unwrap_or(500), ack.detail))
                    };
                    if let Some(done) = waiting.pop_front() {
                        let _ = done.send(Outcome::Answered(answer));
                    }
                    if requests.is_none() && waiting.is_empty() {
                        break None;
                    }
                }
                Ok(None) => break Some(Error::unavailable(ID, "the server ended the publish stream")),
                Err(status) => break Some(conn.error(ID, &status)),
            },
        }
    };
    // No more messages into this pipe: what was on the stream fails as the stream did, and
    // what never left goes back to be sent on another pipe.
    jobs.close();
    let failure = failure.unwrap_or_else(|| Error::unavailable(ID, "the publish stream closed"));
    for done in waiting.drain(..) {
        let _ = done.send(Outcome::Answered(Err(failure.clone())));
    }
    while let Ok((message, done)) = jobs.try_recv() {
        let _ = done.send(Outcome::Unsent(message));
    }
}
