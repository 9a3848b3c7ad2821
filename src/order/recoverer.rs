//! Signature recovery for publication, on a fixed set of threads, in batches.
//!
//! Recovery is the largest CPU cost of a publication (~30 µs of secp256k1). Run on the async threads it would
//! stall every other request; run as one `spawn_blocking` task each, a burst of orders wakes as many blocking
//! threads as there are orders (tokio allows hundreds), which then fight over the cores. Here one thread per
//! core takes whatever is waiting, up to [`BATCH`] at a time, and answers each: a burst costs one wake-up per
//! batch, the threads never outnumber the cores, and the queue is bounded, so a flood waits at the door
//! (the sender awaits) instead of growing memory.

use super::signature::{self, SignatureError};
use alloy::primitives::{Address, B256, Bytes};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// Most signatures one thread takes at once.
pub const BATCH: usize = 64;
/// Most signatures waiting.
const QUEUE: usize = 4_096;

type Job = (B256, Bytes, oneshot::Sender<Result<Address, SignatureError>>);

#[derive(Debug, Clone)]
pub struct Recoverer {
    jobs: mpsc::Sender<Job>,
}

impl Recoverer {
    /// Starts `threads` recovery threads (at least one). They stop when the last handle is dropped.
    pub fn start(threads: usize) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for k in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new().name(format!("dragon-recover-{k}")).spawn(move || work(&rx))?;
        }
        Ok(Recoverer { jobs: tx })
    }

    /// One thread per core this process may use.
    pub fn per_core() -> std::io::Result<Self> {
        Self::start(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// The address that signed `digest`.
    pub async fn recover(&self, digest: B256, sig: Bytes) -> Result<Address, SignatureError> {
        let (tx, rx) = oneshot::channel();
        self.jobs.send((digest, sig, tx)).await.map_err(|_| SignatureError::Unavailable)?;
        rx.await.map_err(|_| SignatureError::Unavailable)?
    }
}

fn work(rx: &Mutex<mpsc::Receiver<Job>>) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        {
            // The lock is held only to take a batch; the other threads take theirs while this one works.
            let mut rx = rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let Some(first) = rx.blocking_recv() else { return };
            batch.push(first);
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
        }
        for (digest, sig, reply) in batch.drain(..) {
            let _ = reply.send(signature::recover_signer(&digest, &sig));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::signers::local::PrivateKeySigner;

    #[tokio::test]
    async fn recovers_each_signer_of_a_burst() {
        let r = Recoverer::start(2).expect("threads");
        let keys: Vec<PrivateKeySigner> = (0..8).map(|_| PrivateKeySigner::random()).collect();
        let jobs = (0..500u32).map(|i| {
            let key = &keys[i as usize % keys.len()];
            let digest = alloy::primitives::keccak256(i.to_be_bytes());
            let sig = signature::sign_digest(key, &digest).expect("sign");
            let r = r.clone();
            let expected = key.address();
            async move { (r.recover(digest, sig).await, expected) }
        });
        for (got, expected) in futures_util::future::join_all(jobs).await {
            assert_eq!(got.expect("valid signature"), expected);
        }
        // A bad signature is an error for that order alone.
        let bad = r.recover(B256::ZERO, Bytes::from_static(&[1, 2, 3])).await;
        assert!(bad.is_err());
    }
}
