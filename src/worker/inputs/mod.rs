//! What a task reads besides its arguments: the deal's dataset and the request's input files
//! (`iexec_input_files` in the params), fetched into the worker's cache, which the executor's workspace
//! hard-links from.
//!
//! Both are named by strangers (a requester writes the params, a dataset owner its multiaddr), and the worker
//! fetches them from inside the pool operator's network, with the worker's rights. So the rules are strict:
//!
//! - **Input files** come over `http(s)` only. Local paths and `file://` URLs are refused: a requester could
//!   otherwise name `/proc/self/environ` (the worker's key) and have the app copy it into a public result.
//! - **Every address** a fetch connects to is checked *after* DNS resolution and the connection is pinned to the
//!   checked addresses (no second lookup that a rebinding DNS server could answer differently); redirects are
//!   followed by hand, at most [`MAX_REDIRECTS`], each hop checked the same way. Only public unicast addresses
//!   pass ([`super::address::is_public`]), unless the URL's `host:port` is one the operator trusts
//!   (`--allow-input-host`). A trusted host's redirect to an untrusted private address is refused all the same.
//! - **A dataset** comes over `http(s)` under the same rules, or from a local path *inside the dataset root the
//!   operator configured* (`--dataset-root`; symbolic links resolved before the check); without a root, local
//!   paths are refused. It is checked against its on-chain checksum (`m_datasetChecksum`, the SHA-256 of the
//!   file, as iExec's tools compute it) before any app sees it; a mismatch fails the task, names the expected
//!   checksum only (the actual digest of a file is not published), and nothing is cached. The cache is keyed by
//!   that checksum, so a verified file is fetched once for every deal that uses it.
//! - **Bounds** ([`InputPolicy`]): the number of input files, the bytes of each file and of all the inputs of a
//!   task, the time of each fetch (connect, and the whole transfer) and of all the fetches of a task. Everything
//!   is checked before the first byte is fetched where it can be (count, schemes, paths, a declared length).
//!
//! An input file has no checksum on chain (as in iExec), so it is cached per URL *within one deal*: the tasks of
//! a deal see the same bytes, and a later deal fetches again. Each fetch lands in a temporary file renamed into
//! place, so a crash never leaves a partial file where a complete one is expected. The cache folder is the
//! worker's alone (mode 0700): an app reaches only the links of its own task.

mod cache;
mod error;
mod fetch;
mod policy;
#[cfg(test)]
mod tests;

pub use cache::{DatasetRef, Inputs, input_name, input_urls};
pub use error::InputError;
pub use fetch::MAX_REDIRECTS;
pub use policy::{
    AllowedHost, DEFAULT_CONNECT_TIMEOUT, DEFAULT_FETCH_TIMEOUT, DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_FILES,
    DEFAULT_MAX_TASK_BYTES, DEFAULT_TASK_TIMEOUT, InputPolicy,
};
