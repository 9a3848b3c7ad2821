//! `dragon worker`: joins a pool over HTTP and runs its tasks.
//!
//! ```text
//!  login (challenge) → register {cpu, memory, gpu} → loop { ping every 10 s; POST /workers/work }
//!  task: viewDeal, viewApp, viewCategory ─▶ Executor::run ─▶ result::package (zip + digest)
//!        ─▶ contribute(hash, seal, authorization) ─▶ wait for REVEALING ─▶ reveal(digest) ─▶ upload zip
//!        (each step reported with POST /workers/status)
//! ```
//!
//! The worker contributes and reveals with its own key, so its account needs the deal's worker stake in the
//! hub. It runs up to `--cpu` replicates at once, each in its own task. Each task has a folder
//! `<work-dir>/<taskid>/` holding `state.json` (the digest and how far the task went) and `result.zip`, written
//! before the step they enable: after a restart the pool hands the unfinished replicate back, and the worker goes
//! on from what the chain and that folder say, never computing or contributing twice.
//!
//! What a worker trusts, and what it does not (`docs/executors.md`, "Limits and what a worker trusts"): the
//! pool's owner chose its native apps, but requesters and dataset owners are strangers. So the worker makes
//! itself non-dumpable at start (its key is in its environment: no process without `CAP_SYS_PTRACE`, same user
//! included, can then read `/proc/<worker>/environ` or its memory), runs native apps as another user (`nobody`
//! when it runs as root), keeps its work dir private but for the apps' own workspaces, fetches inputs only for
//! an app its executor admits and only under [`inputs::InputPolicy`], and gives each container its slot's share
//! of the memory and CPU it registered.

pub mod address;
pub mod client;
mod config;
mod error;
pub mod inputs;
mod replicate;
mod state;
mod work_loop;

pub use config::{ExecutorKind, WorkerArgs, WorkerConfig};
pub use error::WorkerError;
pub use state::run_dir;

use crate::chain::setup::Account;
use crate::executor::abort_pair;
use replicate::Worker;
use state::prepare_work_dir;
use std::sync::Arc;

/// Runs the worker until `shutdown` resolves. A task in progress is aborted at shutdown and resumed at the
/// next start.
pub async fn run(config: WorkerConfig, shutdown: impl std::future::Future<Output = ()>) -> Result<(), WorkerError> {
    // First: the key is in this process's environment and memory. Non-dumpable, they are out of reach of every
    // process without CAP_SYS_PTRACE, an app running as the worker's own user included.
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|e| WorkerError::Config(format!("cannot make the worker non-dumpable (prctl): {e}")))?;
    let executor = config.executor.build(&config.work_dir).await?;
    let account = Account::new(&config.rpc_url, &config.key)?;
    prepare_work_dir(&config)?;
    let inputs = inputs::Inputs::new(config.work_dir.join("cache"), config.inputs.clone())?;
    let worker = Arc::new(Worker { config, executor, account, inputs });
    let (abort, signal) = abort_pair();
    tokio::pin!(shutdown);
    tokio::select! {
        () = &mut shutdown => {
            abort.abort();
            Ok(())
        }
        res = worker.main_loop(signal) => res,
    }
}
