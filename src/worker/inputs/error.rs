//! Why a task's inputs were not fetched.

use alloy::primitives::{Address, B256};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Not fetched: the worker's rules refuse it.
    #[error("{what} {url}: {reason}")]
    Refused { what: &'static str, url: String, reason: String },
    /// The fetch was tried and failed.
    #[error("{what} {url}: {reason}")]
    Fetch { what: &'static str, url: String, reason: String },
    #[error("dataset {dataset:#x}: its file {url} does not match the checksum registered on chain ({expected:#x})")]
    Checksum { dataset: Address, url: String, expected: B256 },
    #[error("the request names {count} input files; this worker takes at most {max}")]
    TooManyFiles { count: usize, max: usize },
    #[error("the task's inputs are larger than this worker's limit of {max} bytes per task")]
    TaskTooLarge { max: u64 },
    #[error("fetching the task's inputs took longer than this worker's limit of {0:?} per task")]
    TaskTimeout(Duration),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

pub(super) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> InputError {
    let context = context.into();
    move |source| InputError::Io { context, source }
}
