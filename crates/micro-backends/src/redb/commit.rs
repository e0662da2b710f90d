//! Group commit: concurrent durable writes share one transaction and one `fsync`.
//!
//! redb runs one write transaction at a time and syncs each commit to disk, so one write per
//! transaction caps a file at one write per `fsync` whatever the number of writers. A
//! [`Committer`] is one thread per file that takes every write waiting when it starts a
//! transaction (up to [`MAX_BATCH`]), applies them in arrival order, commits once, and only then
//! answers each writer — so an acknowledged write is on disk, as before, and writers in flight
//! together pay for one sync.
//!
//! A write that fails (a damaged record, say) aborts its batch: it gets its error, and the
//! others are applied again in the next batch, so one writer's failure is nobody else's.

use std::{
    collections::VecDeque,
    sync::{Arc, Weak},
};

use micro_core::Error;
use redb::{Database, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use super::storage;

/// The most writes one transaction takes.
pub(crate) const MAX_BATCH: usize = 256;

/// One write waiting for a transaction.
trait Job: Send {
    /// Applies the write to `txn`; it may be applied again to another transaction if a later
    /// write of the batch fails.
    fn apply(&mut self, txn: &WriteTransaction) -> Result<(), Error>;
    /// Answers the writer with the outcome of the commit (or of its own failure).
    fn finish(self: Box<Self>, outcome: Result<(), Error>);
}

struct Typed<T, F> {
    work: F,
    value: Option<T>,
    reply: oneshot::Sender<Result<T, Error>>,
}

impl<T, F> Job for Typed<T, F>
where
    T: Send,
    F: FnMut(&WriteTransaction) -> Result<T, Error> + Send,
{
    fn apply(&mut self, txn: &WriteTransaction) -> Result<(), Error> {
        self.value = Some((self.work)(txn)?);
        Ok(())
    }

    fn finish(self: Box<Self>, outcome: Result<(), Error>) {
        let Self { value, reply, .. } = *self;
        let answer = outcome.and_then(|()| {
            value.ok_or_else(|| Error::internal("micro.store", "a write was never applied"))
        });
        let _ = reply.send(answer);
    }
}

/// The group-commit thread of one redb file.
#[derive(Clone)]
pub(crate) struct Committer {
    jobs: mpsc::UnboundedSender<Box<dyn Job>>,
    id: &'static str,
}

impl Committer {
    /// Starts the thread committing to `db`; it ends when the last handle is dropped. It
    /// does not keep the file open: the file closes when its owners drop it.
    pub(crate) fn start(id: &'static str, db: &Arc<Database>) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        let db = Arc::downgrade(db);
        std::thread::Builder::new()
            .name(format!("{id} commit"))
            .spawn(move || run(id, &db, queue))
            .expect("spawn the commit thread");
        Self { jobs, id }
    }

    /// Runs `work` in the next transaction; answers once that transaction is on disk.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnMut(&WriteTransaction) -> Result<T, Error> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Typed {
            work,
            value: None,
            reply,
        });
        self.jobs
            .send(job)
            .map_err(|_| Error::internal(self.id, "the commit thread stopped"))?;
        answer
            .await
            .map_err(|_| Error::internal(self.id, "the commit thread stopped"))?
    }
}

fn run(id: &'static str, db: &Weak<Database>, mut queue: mpsc::UnboundedReceiver<Box<dyn Job>>) {
    let mut waiting: VecDeque<Box<dyn Job>> = VecDeque::new();
    loop {
        if waiting.is_empty() {
            match queue.blocking_recv() {
                Some(job) => waiting.push_back(job),
                None => return,
            }
        }
        while waiting.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => waiting.push_back(job),
                Err(_) => break,
            }
        }
        let take = waiting.len().min(MAX_BATCH);
        let mut batch: VecDeque<Box<dyn Job>> = waiting.drain(..take).collect();
        let Some(db) = db.upgrade() else {
            for job in batch {
                job.finish(Err(Error::internal(id, "the file was closed")));
            }
            continue;
        };
        let txn = match db.begin_write() {
            Ok(txn) => txn,
            Err(e) => {
                let e = storage(id, e);
                for job in batch {
                    job.finish(Err(e.clone()));
                }
                continue;
            }
        };
        let mut applied = Vec::with_capacity(batch.len());
        let mut failed = None;
        while let Some(mut job) = batch.pop_front() {
            // A panic in one write fails that write, not the thread every write needs.
            let applied_one =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.apply(&txn)))
                    .unwrap_or_else(|_| Err(Error::internal(id, "a write panicked")));
            match applied_one {
                Ok(()) => applied.push(job),
                Err(e) => {
                    failed = Some((job, e));
                    break;
                }
            }
        }
        if let Some((job, e)) = failed {
            // Nothing of this batch is kept: the failed write answers, the rest go again first.
            drop(txn);
            drop(db);
            job.finish(Err(e));
            for job in batch.into_iter().rev() {
                waiting.push_front(job);
            }
            for job in applied.into_iter().rev() {
                waiting.push_front(job);
            }
            continue;
        }
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| txn.commit()))
            .unwrap_or_else(|_| {
                Err(redb::CommitError::Storage(redb::StorageError::Io(
                    std::io::Error::other("the commit panicked"),
                )))
            })
            .map_err(|e| storage(id, e));
        // Let go of the file before answering: a writer that closes it next finds it closed.
        drop(db);
        for job in applied {
            job.finish(outcome.clone());
        }
    }
}
