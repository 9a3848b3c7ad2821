//! Signature recovery for publication, on a fixed set of threads, in batches.
//!
//! Recovery is the largest CPU cost of a publication (~30 µs of secp256k1). Run on the async threads it would
//! stall every other request; run as one `spawn_blocking` task each, a burst of orders wakes as many blocking
//! threads as there are orders (tokio allows hundreds), which then fight over the cores. Here one thread per
//! core takes whatever is waiting, up to [`BATCH`] at a time, and answers each: a burst costs one wake-up per
//! batch, the threads never outnumber the cores, and the queue is bounded, so a flood waits at the door
//! (the sender awaits) instead of growing memory. A batch publication sends its signatures as one job per thread
//! ([`Recoverer::recover_many`]): one message and one answer each, instead of one per order.

use super::signature::{self, SignatureError};
use alloy::primitives::{Address, B256, Bytes};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// Most signatures one thread takes at once.
pub const BATCH: usize = 64;
/// Most signatures waiting.
const QUEUE: usize = 4_096;

/// Signatures to recover, answered together in the order given.
type Job = (Vec<(B256, Bytes)>, oneshot::Sender<Vec<Result<Address, SignatureError>>>);

#[derive(Debug, Clone)]
pub struct Recoverer {
    jobs: mpsc::Sender<Job>,
    threads: usize,
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
        Ok(Recoverer { jobs: tx, threads: threads.max(1) })
    }

    /// One thread per core this process may use.
    pub fn per_core() -> std::io::Result<Self> {
        Self::start(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// The address that signed `digest`.
    pub async fn recover(&self, digest: B256, sig: Bytes) -> Result<Address, SignatureError> {
        self.recover_many(vec![(digest, sig)]).await.pop().unwrap_or(Err(SignatureError::Unavailable))
    }

    /// Recovers the signers of many digests, split into one job per thread so that all cores share them; one
    /// answer per signature, in order.
    pub async fn recover_many(&self, items: Vec<(B256, Bytes)>) -> Vec<Result<Address, SignatureError>> {
        let n = items.len();
        let per_job = n.div_ceil(self.threads.max(1)).max(1);
        let mut replies = Vec::with_capacity(self.threads);
        let mut items = items.into_iter();
        loop {
            let chunk: Vec<(B256, Bytes)> = items.by_ref().take(per_job).collect();
            if chunk.is_empty() {
                break;
            }
            let len = chunk.len();
            let (tx, rx) = oneshot::channel();
            let sent = self.jobs.send((chunk, tx)).await.is_ok();
            replies.push((len, sent.then_some(rx)));
        }
        let mut out = Vec::with_capacity(n);
        for (len, rx) in replies {
            match rx {
                Some(rx) => match rx.await {
                    Ok(answers) => out.extend(answers),
                    Err(_) => out.extend((0..len).map(|_| Err(SignatureError::Unavailable))),
                },
                None => out.extend((0..len).map(|_| Err(SignatureError::Unavailable))),
            }
        }
        out
    }
}

fn work(rx: &Mutex<mpsc::Receiver<Job>>) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        {
            // The lock is held only to take a batch; the other threads take theirs while this one works.
            let mut rx = rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let Some(first) = rx.blocking_recv() else { return };
            // A job of many signatures is one thread's share of a batch (`recover_many`): taken alone, so that
            // the next share goes to another thread. Single signatures are gathered up to `BATCH`.
            let mut gather = first.0.len() == 1;
            batch.push(first);
            while gather && batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(job) => {
                        gather = job.0.len() == 1;
                        batch.push(job);
                    }
                    Err(_) => break,
                }
            }
        }
        for (items, reply) in batch.drain(..) {
            let _ = reply.send(items.iter().map(|(digest, sig)| signature::recover_signer(digest, sig)).collect());
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

        // Many at once, split over the threads: every answer in its place, a bad one among them.
        let mut items: Vec<(B256, Bytes)> = (0..101u32)
            .map(|i| {
                let digest = alloy::primitives::keccak256(i.to_le_bytes());
                (digest, signature::sign_digest(&keys[i as usize % keys.len()], &digest).expect("sign"))
            })
            .collect();
        items[50].1 = Bytes::from_static(&[9; 65]);
        let answers = r.recover_many(items).await;
        assert_eq!(answers.len(), 101);
        for (i, a) in answers.iter().enumerate() {
            if i == 50 {
                assert!(a.is_err());
            } else {
                assert_eq!(a.as_ref().expect("valid"), &keys[i % keys.len()].address(), "{i}");
            }
        }
        assert!(r.recover_many(Vec::new()).await.is_empty());
    }
}
