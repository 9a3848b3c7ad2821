//! The worker's loop: join the pool (login, register), keep its session alive with heartbeats, ask for work
//! while fewer replicates than its CPUs run, and run each replicate as its own task.

use super::client::{ClientError, PoolClient};
use super::error::WorkerError;
use super::replicate::Worker;
use crate::executor::AbortSignal;
use crate::pool::protocol::{Assignment, ReplicateStatus, StatusUpdate};
use alloy::primitives::B256;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// The heartbeat task of one session; stopped when dropped.
struct Heartbeat(tokio::task::JoinHandle<()>);

impl Heartbeat {
    fn start(pool: PoolClient, every: Duration) -> Heartbeat {
        Heartbeat(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = pool.ping().await {
                    tracing::warn!(error = %e, "heartbeat failed");
                }
            }
        }))
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Worker {
    /// Asks for work while fewer replicates than its CPUs run, and runs each one as its own task.
    pub(super) async fn main_loop(self: &Arc<Self>, abort: AbortSignal) -> Result<(), WorkerError> {
        let mut pool = PoolClient::new(&self.config.pool_url)?;
        let slots = self.config.capacity.cpu.max(1) as usize;
        // Heartbeats run beside the work, so that a long app run does not make the worker look lost.
        let mut heartbeat: Option<Heartbeat> = None;
        // Dropped (with the loop, at shutdown) it aborts the replicates still running.
        let mut tasks: JoinSet<Result<(), WorkerError>> = JoinSet::new();
        let mut running: HashMap<tokio::task::Id, B256> = HashMap::new();
        loop {
            if !pool.logged_in() {
                match self.join(&mut pool).await {
                    Ok(()) => {
                        tracing::info!(worker = %self.me(), pool = %self.config.pool_url, "joined the pool");
                        // The previous session's heartbeat (if any) stops as it is replaced.
                        heartbeat.replace(Heartbeat::start(pool.clone(), self.config.heartbeat));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot join the pool; retrying");
                        tokio::time::sleep(self.config.poll.max(Duration::from_secs(1))).await;
                        continue;
                    }
                }
            }
            while let Some(done) = tasks.try_join_next_with_id() {
                self.finished(&mut pool, &mut running, done).await;
            }
            if tasks.len() < slots {
                let ids: Vec<B256> = running.values().copied().collect();
                match pool.work(&ids).await {
                    Ok(Some(a)) => {
                        let (me, p, ab, taskid) = (Arc::clone(self), pool.clone(), abort.clone(), a.taskid);
                        let h = tasks.spawn(async move { me.run_replicate(&p, &a, ab).await });
                        running.insert(h.id(), taskid);
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => self.on_pool_error(&mut pool, e),
                }
            }
            if !pool.logged_in() {
                heartbeat.take();
            }
            tokio::select! {
                Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    self.finished(&mut pool, &mut running, done).await;
                }
                () = tokio::time::sleep(self.config.poll) => {}
            }
        }
    }

    /// One replicate, in its own task.
    async fn run_replicate(&self, pool: &PoolClient, a: &Assignment, abort: AbortSignal) -> Result<(), WorkerError> {
        let res = self.handle(pool, a, abort).await;
        if let Err(WorkerError::Pool(e)) = &res
            && e.is_transient()
        {
            // The pool is unreachable or failing: the replicate is not failed, it is handed back once the pool
            // answers, and resumes from the work dir and the chain. Its slot waits meanwhile.
            tracing::warn!(task = %a.taskid, error = %e, "pool unreachable; the task resumes later");
            tokio::time::sleep(self.config.poll.max(Duration::from_secs(1))).await;
        }
        res
    }

    /// What a finished replicate task leaves to do: report a failure, or join the pool again.
    async fn finished(
        &self,
        pool: &mut PoolClient,
        running: &mut HashMap<tokio::task::Id, B256>,
        done: Result<(tokio::task::Id, Result<(), WorkerError>), tokio::task::JoinError>,
    ) {
        let (id, res) = match done {
            Ok(d) => d,
            Err(e) => {
                let task = running.remove(&e.id());
                let why = "replicate task ended abnormally; it resumes when handed back";
                tracing::error!(task = ?task, error = %e, "{why}");
                return;
            }
        };
        let Some(task) = running.remove(&id) else { return };
        match res {
            Ok(()) => {}
            Err(WorkerError::Pool(e)) if e.is_transient() => {}
            // The session changed while it ran: not the task's fault; it is handed back after the new login.
            Err(WorkerError::Pool(e)) if e.is_session() => self.on_pool_error(pool, e),
            Err(e) => {
                tracing::warn!(task = %task, error = %e, "task failed");
                let mut u = StatusUpdate::new(task, ReplicateStatus::Failed);
                u.error = Some(e.to_string());
                if let Err(e) = pool.status(&u).await {
                    self.on_pool_error(pool, e);
                }
            }
        }
    }

    fn on_pool_error(&self, pool: &mut PoolClient, e: ClientError) {
        tracing::warn!(error = %e, "pool call failed");
        if e.is_session() {
            // The pool lost the session or the registration (a new database): join again.
            pool.logout();
        }
    }

    async fn join(&self, pool: &mut PoolClient) -> Result<(), ClientError> {
        pool.login(&self.config.key).await?;
        pool.register(&self.config.capacity).await
    }
}
