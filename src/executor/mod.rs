//! Executors: how a worker runs one task's app and gets its output folder back.
//!
//! ```text
//!  worker ──TaskSpec + Workspace──▶ dyn Executor ──▶ Outcome { exit code, logs, out/, computed.json }
//!                                   │                    │
//!                   process (native, allow-listed)       └─▶ result::package ─▶ zip + resultDigest
//!                   docker  (Engine API, isolated)
//! ```
//!
//! One trait, [`Executor`], chosen at run time from [`ExecutorConfig`] (`Arc<dyn Executor>`):
//! - [`process::ProcessExecutor`] runs a trusted native command in its own process group;
//! - [`docker::DockerExecutor`] runs the app's image through the Docker Engine API, without network.
//!
//! Both give the app iExec's contract ([`iexec_env`]): inputs in `IEXEC_IN`, outputs in `IEXEC_OUT`, the
//! arguments of the request's `iexec_args` split as iExec splits them ([`split_args`]), and `computed.json`
//! read back. Both enforce the category's time limit and a bound on output, and both can be aborted.
//! `docs/executors.md` says what each one isolates, and how a third executor (a cluster scheduler) plugs in.

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
