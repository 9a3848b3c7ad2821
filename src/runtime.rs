//! What every long-running command (`dragon serve`, `local`, `pool`, `worker`, `bot`) shares with the process
//! it runs in: the one shutdown signal, the log output, and background tasks supervised and stopped together.
//! Kept below the server, so that the pool, the worker and the local market do not reach into the exchange's
//! composition for them.

use std::sync::Arc;

/// Background tasks stopped together at shutdown.
#[derive(Debug, Default)]
pub struct Background {
    stop: Arc<tokio::sync::Notify>,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Tasks that end by themselves on the signal and are waited for, after the others stopped.
    graceful: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Background {
    /// Completes when [`Background::stop`] is called: the shutdown signal of the tasks pushed here.
    pub fn stopping(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let stop = self.stop.clone();
        async move { stop.notified().await }
    }

    pub(crate) fn push(&self, t: tokio::task::JoinHandle<()>) {
        if let Ok(mut g) = self.tasks.lock() {
            g.push(t);
        }
    }

    /// A task that ends by itself once [`Background::stopping`] completes, waited for (a few seconds at most) after
    /// the others are stopped: a lease's keeper, which releases its lease only once nothing acts under it.
    pub(crate) fn push_graceful(&self, t: tokio::task::JoinHandle<()>) {
        if let Ok(mut g) = self.graceful.lock() {
            g.push(t);
        }
    }

    /// Stops chain sync after its current step, and the settler where it is: every transaction it may have sent
    /// was stored, signed, before it was sent (`chain::settler`, write-ahead), and the next start follows it to
    /// its end, sending the same bytes again if the node lost them.
    pub async fn stop(&self) {
        self.stop.notify_waiters();
        let tasks: Vec<_> = self.tasks.lock().map(|mut t| t.drain(..).collect()).unwrap_or_default();
        let mut tasks = tasks.into_iter();
        let first = tasks.next();
        for t in tasks {
            t.abort();
            let _ = t.await;
        }
        // The first is the settler when there is one; sync exits on the signal.
        if let Some(t) = first {
            t.abort();
            let _ = t.await;
        }
        let graceful: Vec<_> = self.graceful.lock().map(|mut t| t.drain(..).collect()).unwrap_or_default();
        for mut t in graceful {
            if tokio::time::timeout(std::time::Duration::from_secs(3), &mut t).await.is_err() {
                t.abort();
            }
        }
    }
}

/// Resolves at Ctrl-C or SIGTERM: the one shutdown signal of every long-running command.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}

/// Logs to stderr, filtered by `RUST_LOG` (default: info).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,actix_server=warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
}
