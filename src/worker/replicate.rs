//! One replicate, taken as far as this worker can: the app run and its result packaged, the contribution, the
//! reveal once the task reached consensus, and the archive's upload. Each step is reported to the pool; the
//! chain and the task's folder ([`super::state`]) say where a resumed replicate starts.

use super::client::PoolClient;
use super::config::WorkerConfig;
use super::error::{WorkerError, io_err};
use super::inputs;
use super::state::{read_state, run_dir, write_private, write_state};
use crate::chain::contracts::hub::DragonHub;
use crate::chain::revert::{self, Revert, TaskError};
use crate::chain::setup::Account;
use crate::executor::result::{package, result_hash, result_seal};
use crate::executor::{AbortSignal, AppRef, Executor, Limits, TaskSpec, Workspace, args_from_params};
use crate::pool::protocol::{Assignment, ReplicateStatus, StatusUpdate};
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::DynProvider;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub(super) struct Worker {
    pub(super) config: WorkerConfig,
    pub(super) executor: Arc<dyn Executor>,
    pub(super) account: Account,
    pub(super) inputs: inputs::Inputs,
}

/// Gas above the estimate for a worker's transactions. The estimate is made against the chain as it is when the
/// transaction is built; replicates of a task contribute side by side, and a contribution mined after another's
/// may be the one that reaches the consensus, which costs more than estimated (it records the winners). Unused
/// gas is not paid for.
async fn with_headroom<P: alloy::providers::Provider, D: alloy::contract::CallDecoder>(
    call: alloy::contract::CallBuilder<P, D>,
) -> Result<alloy::contract::CallBuilder<P, D>, alloy::contract::Error> {
    let estimate = call.estimate_gas().await?;
    Ok(call.gas(estimate.saturating_add(estimate / 2).saturating_add(100_000)))
}

impl Worker {
    pub(super) fn hub(&self) -> DragonHub::DragonHubInstance<&DynProvider> {
        DragonHub::new(self.config.deployment.hub, &self.account.provider)
    }

    pub(super) fn me(&self) -> Address {
        self.account.address
    }

    /// Takes one replicate as far as this worker can: computed, contributed, revealed, uploaded.
    pub(super) async fn handle(
        &self,
        pool: &PoolClient,
        a: &Assignment,
        abort: AbortSignal,
    ) -> Result<(), WorkerError> {
        let taskid = a.taskid;
        if a.authorization.worker != self.me() || a.authorization.taskid != taskid {
            return Err(WorkerError::Task("the authorization is not for this worker and task".into()));
        }
        let dir = self.config.work_dir.join(format!("{taskid:#x}"));
        std::fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        // Searchable (the app's workspace is below), not listable; its state and archive are private.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o711))
            .map_err(io_err("protecting", &dir))?;
        let mut state = read_state(&dir)?;
        let report = |status: ReplicateStatus| StatusUpdate::new(taskid, status);

        let task = self.hub().viewTask(taskid).call().await?;
        let contribution = self.hub().viewContribution(taskid, self.me()).call().await?;
        if task.status != 1 && task.status != 2 {
            // UNSET cannot be handed out; COMPLETED or FAILED: nothing left to do for it.
            self.executor.release(taskid);
            // Completed with a contribution of ours: the chain decides the replicate (completed, or failed if
            // outvoted) and the pool reads it there. An ABORTED from here would race the pool's reading and, if
            // first, stand for good (a replicate that is over changes no more).
            if task.status == 3 && contribution.status != 0 {
                return Ok(());
            }
            pool.status(&report(ReplicateStatus::Aborted)).await?;
            return Ok(());
        }
        let deal = self.hub().viewDeal(a.dealid).call().await?;
        let has_callback = deal.callback != Address::ZERO;

        // 1. Compute, unless a digest from an earlier run is kept.
        let digest = match state.digest {
            Some(d) if dir.join("result.zip").exists() => d,
            _ if contribution.status != 0 => {
                return Err(WorkerError::Task(
                    "contributed on chain, but the result is lost from the work dir: cannot reveal".into(),
                ));
            }
            _ => {
                tell(pool, &report(ReplicateStatus::Computing)).await;
                let (digest, callback) = self.compute(a, &deal, &dir, has_callback, abort).await?;
                state.digest = Some(digest);
                state.callback = callback;
                write_state(&dir, &state)?;
                digest
            }
        };
        let hash = result_hash(taskid, digest);
        let seal = result_seal(self.me(), taskid, digest);
        // From here on every report carries the result, so that the pool has it whichever report gets through.
        let callback = state.callback.clone();
        let with_result = |status: ReplicateStatus| {
            let mut u = report(status);
            u.result_digest = Some(digest);
            u.result_hash = Some(hash);
            u.result_seal = Some(seal);
            u.callback_data = callback.clone();
            u
        };
        tell(pool, &with_result(ReplicateStatus::Computed)).await;

        // 2. Contribute.
        if contribution.status == 0 {
            tell(pool, &with_result(ReplicateStatus::Contributing)).await;
            for attempt in 1.. {
                // Replicates run side by side and send from the same key.
                let sent = self
                    .account
                    .one_at_a_time(async {
                        let sign = a.authorization.sign.clone();
                        let hub = self.hub();
                        let call = hub.contribute(taskid, hash, seal, Address::ZERO, Bytes::new(), sign);
                        with_headroom(call).await?.send().await
                    })
                    .await;
                match self.mined(sent, "contribute").await {
                    Ok(()) => break,
                    Err(WorkerError::Refused { revert, .. })
                        if matches!(*revert, Revert::Task(TaskError::AlreadyContributed(_))) =>
                    {
                        break;
                    }
                    // Mined, but the chain had moved since the estimate: sent again, on a new estimate (which
                    // refuses, and says why, if the task no longer takes contributions).
                    Err(WorkerError::Reverted { tx, .. }) if attempt < 3 => {
                        tracing::warn!(task = %taskid, tx = %tx, attempt, "contribution reverted; sending it again");
                    }
                    Err(e) => return Err(e),
                }
            }
            tracing::info!(task = %taskid, "contributed");
        }
        tell(pool, &with_result(ReplicateStatus::Contributed)).await;

        // 3. Reveal, once the task reached consensus.
        let task = self.wait_revealing(taskid).await?;
        if task.status == 2 {
            let c = self.hub().viewContribution(taskid, self.me()).call().await?;
            if c.status == 1 {
                tell(pool, &with_result(ReplicateStatus::Revealing)).await;
                let sent = self
                    .account
                    .one_at_a_time(async { with_headroom(self.hub().reveal(taskid, digest)).await?.send().await })
                    .await;
                self.mined(sent, "reveal").await?;
                tracing::info!(task = %taskid, "revealed");
            }
        } else if task.status != 3 {
            return Err(WorkerError::Task(format!(
                "the task is in status {} on chain after contributing",
                task.status
            )));
        }

        // Outvoted (another result won), or rejected at a reopen: the archive is not the task's result.
        let mine = self.hub().viewContribution(taskid, self.me()).call().await?;
        if mine.status != 2 {
            return Err(WorkerError::Task(format!(
                "this contribution is not a revealed winner (contribution status {}): the consensus is another \
                 result, or the reveal came too late",
                mine.status
            )));
        }

        // 4. Upload the archive. The pool checks it against the reported digest: this report must get through.
        pool.status(&with_result(ReplicateStatus::Revealed)).await?;
        if !state.uploaded {
            let zip = std::fs::read(dir.join("result.zip")).map_err(io_err("reading", &dir.join("result.zip")))?;
            pool.upload(taskid, zip).await?;
            state.uploaded = true;
            write_state(&dir, &state)?;
        }
        pool.status(&report(ReplicateStatus::ResultUploaded)).await?;
        // The run folders are not needed any more; state.json and the archive stay until the task is done.
        let _ = std::fs::remove_dir_all(run_dir(&self.config.work_dir, taskid));
        self.executor.release(taskid);
        Ok(())
    }

    /// Runs the app and packages its output into `dir/result.zip`; returns the digest and callback data.
    pub(super) async fn compute(
        &self,
        a: &Assignment,
        deal: &crate::chain::contracts::hub::IexecLibCore_v5::Deal,
        dir: &Path,
        has_callback: bool,
        abort: AbortSignal,
    ) -> Result<(B256, Option<Bytes>), WorkerError> {
        let app = self.hub().viewApp(deal.app.pointer).call().await?;
        let app =
            AppRef { address: deal.app.pointer, multiaddr: String::from_utf8_lossy(&app.m_appMultiaddr).into_owned() };
        // Before any download: a task whose app this worker will not run costs it nothing.
        self.executor.admits(&app).await?;
        let dataset = if deal.dataset.pointer == Address::ZERO {
            None
        } else {
            let d = self.hub().viewDataset(deal.dataset.pointer).call().await?;
            Some(inputs::DatasetRef {
                address: deal.dataset.pointer,
                multiaddr: String::from_utf8_lossy(&d.m_datasetMultiaddr).into_owned(),
                checksum: d.m_datasetChecksum,
            })
        };
        let urls = inputs::input_urls(&deal.params);
        let (dataset, input_files) = self.inputs.for_task(a.dealid, dataset.as_ref(), &urls).await?;
        let category = self.hub().viewCategory(deal.category).call().await?;
        let secs = u64::try_from(category.workClockTimeRef).unwrap_or(u64::MAX);
        let n = |v: U256| u64::try_from(v).unwrap_or(u64::MAX);
        // Each slot gets its share of what the worker registered with the pool: the pool hands it up to `cpu`
        // replicates at once, so that is what they must fit in together. One CPU per slot.
        let slots = u64::from(self.config.capacity.cpu.max(1));
        let spec = TaskSpec {
            task_id: a.taskid,
            deal_id: a.dealid,
            task_index: a.index,
            bot_first: n(deal.botFirst),
            bot_size: n(deal.botSize),
            app,
            args: args_from_params(&deal.params),
            input_files,
            dataset,
            env: self.config.app_env.clone(),
            limits: Limits {
                max_duration: Duration::from_secs(secs.max(1)),
                memory_bytes: Some(self.config.capacity.memory / slots),
                milli_cpus: Some(1000),
                scratch_bytes: self.config.scratch_bytes,
                ..Limits::default()
            },
        };
        let root = run_dir(&self.config.work_dir, a.taskid);
        let ws = if self.executor.resumes(a.taskid) {
            // A cluster job of the task may still run, or have ended while the worker was down: its workspace is
            // its output, kept as it is; the executor re-attaches to the job.
            Workspace::resume(&root, &spec)?
        } else {
            // A run interrupted earlier left a partial output: start over from an empty folder.
            let _ = std::fs::remove_dir_all(&root);
            Workspace::prepare(&root, &spec)?
        };
        let outcome = self.executor.run(&spec, &ws, abort).await?;
        tracing::info!(task = %a.taskid, exit = outcome.exit_code, secs = outcome.duration.as_secs_f64(), "app ran");
        if outcome.exit_code != 0 {
            return Err(WorkerError::Task(format!(
                "the app exited with code {}: {}",
                outcome.exit_code,
                outcome.stderr.text().trim()
            )));
        }
        // As iExec's worker: what the app printed goes with its result (`dragon stdout` reads it). Written through
        // the opened folder: a link the app left as stdout.txt is replaced, never written through.
        let stdout_txt = outcome.out_dir.join("stdout.txt");
        crate::executor::outdir::OutDir::open(&outcome.out_dir)
            .and_then(|out| out.create("stdout.txt"))
            .and_then(|mut f| std::io::Write::write_all(&mut f, &outcome.stdout.head))
            .map_err(io_err("writing", &stdout_txt))?;
        let packaged = package(&outcome.out_dir, outcome.computed.as_ref(), has_callback)?;
        let zip_path = dir.join("result.zip");
        let tmp = dir.join("result.zip.tmp");
        write_private(&tmp, &packaged.zip)?;
        std::fs::rename(&tmp, &zip_path).map_err(io_err("writing", &zip_path))?;
        let callback = if has_callback {
            let data = outcome.computed.as_ref().and_then(|c| c.callback_data.as_deref()).unwrap_or_default();
            Some(Bytes::from(
                alloy::hex::decode(data).map_err(|e| WorkerError::Task(format!("callback-data is not hex: {e}")))?,
            ))
        } else {
            None
        };
        Ok((packaged.digest, callback))
    }

    /// Polls the task until it leaves ACTIVE (consensus, or done, or failed), at most until its contribution
    /// deadline.
    pub(super) async fn wait_revealing(
        &self,
        taskid: B256,
    ) -> Result<crate::chain::contracts::hub::IexecLibCore_v5::Task, WorkerError> {
        loop {
            let t = self.hub().viewTask(taskid).call().await?;
            if t.status != 1 {
                return Ok(t);
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            if U256::from(now) > t.contributionDeadline {
                return Err(WorkerError::Task("no consensus before the contribution deadline".into()));
            }
            tokio::time::sleep(self.config.poll.min(Duration::from_secs(2))).await;
        }
    }

    /// Waits for a transaction; a refusal by the hub is [`WorkerError::Refused`] with its decoded reason.
    pub(super) async fn mined(
        &self,
        sent: Result<alloy::providers::PendingTransactionBuilder<alloy::network::Ethereum>, alloy::contract::Error>,
        what: &'static str,
    ) -> Result<(), WorkerError> {
        let pending = match sent {
            Ok(p) => p,
            Err(e) => {
                return Err(match e.as_revert_data() {
                    Some(data) => WorkerError::Refused { what, revert: Box::new(revert::decode(&data)) },
                    None => e.into(),
                });
            }
        };
        let receipt = pending.with_timeout(Some(Duration::from_secs(60))).get_receipt().await?;
        if !receipt.status() {
            return Err(WorkerError::Reverted { what, tx: receipt.transaction_hash });
        }
        Ok(())
    }
}

/// Reports a status change, best effort: the chain steps go on while the pool is unreachable, and the
/// replicate is handed back (and reported again) once it answers.
async fn tell(pool: &PoolClient, u: &StatusUpdate) {
    if let Err(e) = pool.status(u).await {
        tracing::warn!(task = %u.taskid, status = u.status.as_str(), error = %e, "status report lost");
    }
}
