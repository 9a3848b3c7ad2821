//! Executors: how a worker runs one task's app and gets its output folder back.
//!
//! ```text
//!  worker ──TaskSpec + Workspace──▶ dyn Executor ──▶ Outcome { exit code, logs, out/, computed.json }
//!                                   │                    │
//!                   process (native, allow-listed)       └─▶ result::package ─▶ zip + resultDigest
//!                   docker  (Engine API, isolated)
//!                   slurm   (one batch job per task on a cluster; the job outlives the worker)
//! ```
//!
//! One trait, [`Executor`], chosen at run time from [`ExecutorConfig`] (`Arc<dyn Executor>`):
//! - [`process::ProcessExecutor`] runs a trusted native command in its own process group;
//! - [`docker::DockerExecutor`] runs the app's image through the Docker Engine API, without network;
//! - [`slurm::SlurmExecutor`] submits the same allow-listed native command as a Slurm batch job, records the job
//!   with the task, and re-attaches to it after a restart.
//!
//! Both give the app iExec's contract ([`iexec_env`]): inputs in `IEXEC_IN`, outputs in `IEXEC_OUT`, the
//! arguments of the request's `iexec_args` split as iExec splits them ([`split_args`]), and `computed.json`
//! read back. Both enforce the category's time limit and a bound on output, and both can be aborted.
//! `docs/executors.md` says what each one isolates, and how a Kubernetes executor would plug in.

mod abort;
mod app_user;
mod config;
mod contract;
pub mod docker;
mod error;
pub mod outdir;
mod output;
pub mod process;
pub mod result;
pub mod slurm;
mod spec;

pub use abort::{AbortHandle, AbortSignal, abort_pair};
pub use app_user::AppUser;
pub use config::ExecutorConfig;
pub use contract::{args_from_params, iexec_env, split_args};
pub use error::ExecError;
pub use output::dir_size;
pub use result::{ComputedJson, ResultError};
pub use spec::{
    AppRef, BoxFuture, CapturedLog, DEFAULT_SCRATCH_BYTES, DatasetFile, Executor, InputFile, Limits, Outcome, TaskSpec,
    Workspace,
};
