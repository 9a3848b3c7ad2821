//! The keeper of one lease: takes it when free, renews it every `renew`, and says through a `watch` channel which
//! tenure this process holds (`None`: none).
//!
//! Two clocks, on purpose. The database's clock decides when the lease expires for everyone else (`expires_at`,
//! set by the database at each renewal). This process decides when it stops acting by its own *monotonic* clock:
//! a renewal sent at local instant `t` makes the database set `expires_at` to its clock at execution plus the TTL,
//! which is after `t + ttl`; so the keeper steps down at `t + ttl - margin`, strictly before anyone else can take
//! the lease, whatever the wall clocks say. A process paused (SIGSTOP, a long GC-like stall, a VM migration)
//! wakes up past that instant and steps down before it acts: the deadline is checked before anything is
//! published, and the fence (`store::leases::check`) refuses whatever it still tries to write.
//!
//! Renewals use a connection of their own, not the pool: a pool exhausted by requests must not starve the one
//! statement that keeps the lease. A failed renewal (the connection lost or terminated, an error, no answer
//! before the deadline) is a lost lease: the keeper steps down at once, and waits one TTL before it competes
//! again, so that another instance can take over rather than this one winning its own lease back at once after
//! every fault of its connection.

use crate::store::StoreError;
use crate::store::leases::{self, Fence};
use serde::Deserialize;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// How a lease is kept (`[lease]` in the TOML file).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LeaseConfig {
    /// Milliseconds between two renewals (and between two attempts of a candidate).
    pub renew_ms: u64,
    /// Milliseconds a renewal keeps the lease by the database's clock: how long a dead holder blocks the others.
    pub ttl_ms: u64,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig { renew_ms: 1_000, ttl_ms: 5_000 }
    }
}

impl LeaseConfig {
    pub fn renew(&self) -> Duration {
        Duration::from_millis(self.renew_ms)
    }

    pub fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_ms)
    }

    /// What is kept back from the TTL before the local deadline: a fifth of it, at least one renewal period, so
    /// a renewal still has time to land before the holder must stop.
    fn margin(&self) -> Duration {
        (self.ttl() / 5).max(self.renew())
    }

    /// The bounds, with the reason of the first one broken.
    pub fn validate(&self) -> Result<(), String> {
        if !(100..=10_000).contains(&self.renew_ms) {
            return Err("renew_ms must be between 100 and 10000".into());
        }
        if self.ttl_ms > 300_000 {
            return Err("ttl_ms must be at most 300000".into());
        }
        // Room for two renewals before the local deadline: one lost renewal must not cost the lease.
        if self.ttl_ms < 3 * self.renew_ms {
            return Err("ttl_ms must be at least 3 times renew_ms".into());
        }
        Ok(())
    }
}

/// A running keeper: the tenure held, and the handle of its task.
#[derive(Debug)]
pub struct LeaseKeeper {
    pub name: String,
    pub holder: String,
    pub tenure: watch::Receiver<Option<Fence>>,
}

impl LeaseKeeper {
    /// Starts keeping `name` for `holder`, connecting with `pg` (its own connection). The task ends when
    /// `stop` completes, releasing the lease if it holds it, so that a graceful stop hands over at once.
    pub fn spawn(
        pg: tokio_postgres::Config,
        name: String,
        holder: String,
        config: LeaseConfig,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> (LeaseKeeper, tokio::task::JoinHandle<()>) {
        let (tx, rx) = watch::channel(None);
        let keeper = Keeper { pg, name: name.clone(), holder: holder.clone(), config, tx, conn: None };
        let task = tokio::spawn(keeper.run(stop));
        (LeaseKeeper { name, holder, tenure: rx }, task)
    }
}

struct Keeper {
    pg: tokio_postgres::Config,
    name: String,
    holder: String,
    config: LeaseConfig,
    tx: watch::Sender<Option<Fence>>,
    conn: Option<tokio_postgres::Client>,
}

/// How long one connection attempt or one renewal may take: never past the next renewal.
fn attempt_timeout(config: &LeaseConfig) -> Duration {
    config.renew().max(Duration::from_millis(100))
}

impl Keeper {
    async fn run(mut self, stop: impl std::future::Future<Output = ()> + Send + 'static) {
        tokio::pin!(stop);
        // Until when this process may act on its tenure, by the local monotonic clock.
        let mut deadline: Option<Instant> = None;
        let mut next = Instant::now();
        loop {
            tokio::select! {
                () = &mut stop => break,
                () = tokio::time::sleep_until(next) => {}
                () = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                } => {
                    self.step_down("its renewal deadline passed without a successful renewal");
                    deadline = None;
                    next = Instant::now() + self.config.ttl();
                    continue;
                }
            }
            // A paused process resumes here possibly long past its deadline: it steps down before anything else.
            if deadline.is_some_and(|d| Instant::now() >= d) {
                self.step_down("its renewal deadline passed while the process was not running");
                deadline = None;
                next = Instant::now() + self.config.ttl();
                continue;
            }
            let sent = Instant::now();
            match self.renew().await {
                Ok(Some(epoch)) => {
                    let until = sent + self.config.ttl() - self.config.margin();
                    // A renewal that took longer than the margin allows is already too late to act on.
                    if Instant::now() >= until {
                        self.step_down("a renewal answered too late to act on");
                        deadline = None;
                    } else {
                        deadline = Some(until);
                        self.hold(epoch);
                    }
                    next = sent + self.config.renew();
                }
                Ok(None) => {
                    if self.tx.borrow().is_some() {
                        self.step_down("another instance holds the lease");
                    }
                    deadline = None;
                    next = sent + self.config.renew();
                }
                Err(e) => {
                    // The connection is suspect (terminated, broken, stuck): a new one for the next attempt.
                    self.conn = None;
                    if self.tx.borrow().is_some() {
                        tracing::warn!(lease = %self.name, error = %e, "renewing the lease failed");
                        self.step_down("a renewal failed");
                        next = Instant::now() + self.config.ttl();
                    } else {
                        tracing::debug!(lease = %self.name, error = %e, "trying the lease failed");
                        next = Instant::now() + self.config.renew();
                    }
                    deadline = None;
                }
            }
        }
        self.release().await;
    }

    /// One acquire-or-renew, on the keeper's own connection, within one renewal period.
    async fn renew(&mut self) -> Result<Option<i64>, StoreError> {
        let limit = attempt_timeout(&self.config);
        // A session that ended under the keeper (terminated, dropped by a proxy or a restart) may have held
        // whatever the database ties to a session: it counts as a failed renewal, not as a quiet reconnect.
        if self.conn.as_ref().is_some_and(|c| c.is_closed()) {
            self.conn = None;
            return Err(StoreError::Pool("the lease's connection was closed".into()));
        }
        let attempt = async {
            if self.conn.is_none() {
                let (client, connection) = self.pg.connect(tokio_postgres::NoTls).await?;
                let name = self.name.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(lease = %name, error = %e, "the lease's connection ended");
                    }
                });
                self.conn = Some(client);
            }
            let Some(client) = self.conn.as_ref() else { return Ok(None) };
            leases::acquire(client, &self.name, &self.holder, self.config.ttl()).await
        };
        match tokio::time::timeout(limit, attempt).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Pool(format!("no answer within {} ms", limit.as_millis()))),
        }
    }

    fn hold(&self, epoch: i64) {
        let fence = Fence { name: self.name.clone(), holder: self.holder.clone(), epoch };
        self.tx.send_if_modified(|held| {
            if held.as_ref() == Some(&fence) {
                return false;
            }
            tracing::info!(lease = %self.name, holder = %self.holder, epoch, "lease held");
            *held = Some(fence.clone());
            true
        });
    }

    fn step_down(&self, why: &str) {
        self.tx.send_if_modified(|held| match held.take() {
            Some(f) => {
                tracing::warn!(lease = %self.name, epoch = f.epoch, "stepping down: {why}");
                true
            }
            None => false,
        });
    }

    /// At a graceful stop: lets the others in at once instead of after the TTL.
    async fn release(&mut self) {
        let Some(fence) = self.tx.send_replace(None) else { return };
        let Some(client) = self.conn.as_ref() else { return };
        match tokio::time::timeout(attempt_timeout(&self.config), leases::release(client, &fence)).await {
            Ok(Ok(true)) => tracing::info!(lease = %self.name, epoch = fence.epoch, "lease released"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::warn!(lease = %self.name, error = %e, "releasing the lease failed; it expires"),
            Err(_) => tracing::warn!(lease = %self.name, "releasing the lease took too long; it expires"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_keep_two_renewals_before_the_local_deadline() {
        assert!(LeaseConfig::default().validate().is_ok());
        assert!(LeaseConfig { renew_ms: 50, ttl_ms: 5_000 }.validate().is_err());
        assert!(LeaseConfig { renew_ms: 1_000, ttl_ms: 2_000 }.validate().is_err());
        assert!(LeaseConfig { renew_ms: 1_000, ttl_ms: 600_000 }.validate().is_err());
        let c = LeaseConfig { renew_ms: 1_000, ttl_ms: 3_000 };
        assert!(c.validate().is_ok());
        assert!(c.ttl() - c.margin() > c.renew());
    }
}
