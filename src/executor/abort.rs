//! Aborting a run from outside: the worker's shutdown reaches every app it runs.

use std::sync::Arc;
use tokio::sync::watch;

/// Fires an abort for the [`AbortSignal`]s made with it.
#[derive(Debug, Clone)]
pub struct AbortHandle(Arc<watch::Sender<bool>>);

/// Resolves once its [`AbortHandle`] aborts; never resolves when there is none left.
#[derive(Debug, Clone)]
pub struct AbortSignal(watch::Receiver<bool>);

/// A new abort pair.
pub fn abort_pair() -> (AbortHandle, AbortSignal) {
    let (tx, rx) = watch::channel(false);
    (AbortHandle(Arc::new(tx)), AbortSignal(rx))
}

impl AbortHandle {
    pub fn abort(&self) {
        self.0.send_replace(true);
    }
}

impl AbortSignal {
    /// A signal that never fires.
    pub fn never() -> AbortSignal {
        let (_tx, rx) = watch::channel(false);
        AbortSignal(rx)
    }

    pub fn is_aborted(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits for the abort. A dropped handle means nobody can abort any more, so this then waits forever.
    pub async fn aborted(&mut self) {
        if self.0.wait_for(|a| *a).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn abort_signal_fires_and_a_dropped_handle_never_does() {
        let (h, mut s) = abort_pair();
        h.abort();
        s.aborted().await;
        assert!(s.is_aborted());
        let (h, mut s) = abort_pair();
        drop(h);
        let r = tokio::time::timeout(Duration::from_millis(20), s.aborted()).await;
        assert!(r.is_err());
    }
}
