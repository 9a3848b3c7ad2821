//! How the worker fails: [`WorkerError`], for a task (reported to the pool as FAILED with its text) or for the
//! whole worker.

use super::client::ClientError;
use super::inputs;
use crate::chain::ChainError;
use crate::chain::revert::Revert;
use alloy::primitives::B256;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Pool(#[from] ClientError),
    #[error("executor: {0}")]
    Exec(#[from] crate::executor::ExecError),
    #[error("result: {0}")]
    Result(#[from] crate::executor::ResultError),
    #[error("the hub refused {what}: {revert}")]
    // Boxed: a decoded revert is large, and this error travels through every step of a task.
    Refused { what: &'static str, revert: Box<Revert> },
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Task(String),
    #[error("{what} transaction {tx:#x} reverted")]
    Reverted { what: &'static str, tx: B256 },
    #[error(transparent)]
    Input(#[from] inputs::InputError),
}

impl From<alloy::contract::Error> for WorkerError {
    fn from(e: alloy::contract::Error) -> Self {
        WorkerError::Chain(e.into())
    }
}

impl From<alloy::providers::PendingTransactionError> for WorkerError {
    fn from(e: alloy::providers::PendingTransactionError) -> Self {
        WorkerError::Chain(e.into())
    }
}

pub(super) fn io_err(what: &str, p: &Path) -> impl FnOnce(std::io::Error) -> WorkerError {
    let context = format!("{what} {}", p.display());
    move |source| WorkerError::Io { context, source }
}
