//! What the processes of Dragon share to start and stop: background tasks supervised and stopped together.

use std::sync::Arc;

/// Background tasks stopped together at shutdown.
#[derive(Debug, Default)]
pub struct Background {
    stop: Arc<tokio::sync::Notify>,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
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
    }
}
