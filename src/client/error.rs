//! How a command fails: [`CliError`], one line, exit 2 when the user can fix it and 1 otherwise. Defined here,
//! below the command line, because every client command returns it and `cli` only prints it.

/// A failed command: bad input (exit 2) or a failure outside the user's input (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Failure(#[from] anyhow::Error),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Input(_) => 2,
            CliError::Failure(_) => 1,
        }
    }
}

/// A mistake the user can fix (exit 2).
pub(crate) fn input(msg: impl Into<String>) -> CliError {
    CliError::Input(msg.into())
}

/// A failure of a service or of the machine (exit 1).
pub(crate) fn failure(msg: impl std::fmt::Display) -> CliError {
    CliError::Failure(anyhow::anyhow!("{msg}"))
}

/// An error with its sources, on one line (reqwest and alloy put the useful part, e.g. "Connection refused",
/// in the source chain).
pub(crate) fn chain_of(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

/// A chain call that failed.
pub(crate) fn chain_failure(rpc: &str, e: &dyn std::error::Error) -> CliError {
    failure(format!("the chain at {rpc} failed: {}", chain_of(e)))
}
