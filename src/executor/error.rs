//! Why a run produced no outcome.

use alloy::primitives::Address;
use std::time::Duration;

/// Why a run produced no [`Outcome`].
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("app {app} is not on this pool's allow-list of native apps")]
    NotAllowed { app: Address },
    #[error("app multiaddr {multiaddr:?} cannot be run here: {reason}")]
    BadApp { multiaddr: String, reason: String },
    #[error("image {image} is not present on the Docker engine")]
    ImageMissing { image: String },
    #[error("bad task input: {0}")]
    BadInput(String),
    #[error("{0}")]
    Config(String),
    #[error("the app ran longer than its limit of {limit:?} and was killed")]
    Timeout { limit: Duration },
    #[error("the app's {what} reached {size} bytes, over the limit of {limit}; it was killed")]
    OutputTooLarge { what: &'static str, size: u64, limit: u64 },
    #[error("the run was aborted")]
    Aborted,
    #[error("computed.json is not valid: {0}")]
    ComputedJson(String),
    #[error("could not start the app")]
    Spawn(#[source] std::io::Error),
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("Slurm: {context}: {detail}")]
    Slurm { context: String, detail: String },
    #[error("Slurm job {job} ended {state}")]
    SlurmJob { job: u64, state: String },
    #[error("Docker engine: {context}")]
    Docker {
        context: String,
        #[source]
        source: bollard::errors::Error,
    },
}
