//! Checks an uploaded result archive against the digest its worker revealed, so that the pool never puts on
//! chain a link to bytes other than the ones the consensus was about.
//!
//! The archive is unpacked into a temporary folder and digested exactly as the worker digested its output
//! folder ([`crate::executor::result::result_digest`]): the archive holds that folder, `computed.json`
//! included, at its root. A native app may declare its output by its absolute path on the worker; Dragon's
//! worker runs task `T` in `<work-dir>/T/run/out` ([`crate::worker::run_dir`]), so the part of such a path up to
//! `T/run/out` names the archive's root.

use crate::executor::result::{ComputedJson, ResultError, result_digest};
use alloy::primitives::B256;
use std::path::PathBuf;

/// Most bytes an archive may unpack to (a bound on zip bombs; the output folder's bound is 64 MiB).
pub const MAX_UNPACKED: u64 = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("not a zip archive: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("the archive unpacks to more than {MAX_UNPACKED} bytes")]
    TooLarge,
    #[error("computed.json in the archive is not valid: {0}")]
    ComputedJson(String),
    #[error(transparent)]
    Result(#[from] ResultError),
    #[error("unpacking the archive: {0}")]
    Io(#[from] std::io::Error),
}

/// The result digest of an archive (blocking: call it off the async threads).
pub fn archive_digest(zip: &[u8], taskid: B256, has_callback: bool) -> Result<B256, ArchiveError> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip))?;
    let mut total = 0u64;
    for i in 0..archive.len() {
        total = total.saturating_add(archive.by_index(i)?.size());
        if total > MAX_UNPACKED {
            return Err(ArchiveError::TooLarge);
        }
    }
    let dir = TempDir::new()?;
    archive.extract(&dir.0)?;
    let computed = match std::fs::read(dir.0.join("computed.json")) {
        Ok(bytes) => Some(
            serde_json::from_slice::<ComputedJson>(&bytes).map_err(|e| ArchiveError::ComputedJson(e.to_string()))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    let computed = computed.map(|mut c| {
        c.deterministic_output_path = c.deterministic_output_path.map(|p| from_worker_path(&p, taskid));
        c
    });
    Ok(result_digest(&dir.0, computed.as_ref(), has_callback)?)
}

/// `/iexec_out/<rest>` for a path under the worker's output folder of `taskid`; any other path unchanged.
fn from_worker_path(declared: &str, taskid: B256) -> String {
    let marker = format!("/{taskid:#x}/run/out");
    match declared.find(&marker) {
        Some(at) if declared.starts_with('/') => format!("/iexec_out{}", &declared[at + marker.len()..]),
        _ => declared.to_owned(),
    }
}

/// A folder removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        let mut raw = [0u8; 8];
        getrandom::fill(&mut raw).map_err(|e| std::io::Error::other(e.to_string()))?;
        let dir = std::env::temp_dir().join(format!("dragon-pool-archive-{}", alloy::hex::encode(raw)));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::result::package;

    #[test]
    fn an_archive_digests_like_the_folder_it_was_made_from() {
        let taskid = B256::repeat_byte(9);
        let top = TempDir::new().expect("temp dir");
        let out = TempDir(top.0.join(format!("{taskid:#x}/run/out")));
        std::fs::create_dir_all(&out.0).expect("mkdir");
        std::fs::write(out.0.join("result.txt"), b"hello world\n").expect("write");
        let computed = format!(r#"{{"deterministic-output-path":"{}/result.txt"}}"#, out.0.display());
        std::fs::write(out.0.join("computed.json"), &computed).expect("write");
        let c: ComputedJson = serde_json::from_str(&computed).expect("computed");
        // The worker's absolute path does not exist on the pool: the digest still resolves to the file.
        let packaged = package(&out.0, Some(&c), false).expect("package");
        assert_eq!(archive_digest(&packaged.zip, taskid, false).expect("digest"), packaged.digest);
        let portable = br#"{"deterministic-output-path":"/iexec_out/result.txt"}"#;
        std::fs::write(out.0.join("computed.json"), portable).expect("write");
        let c2: ComputedJson = serde_json::from_slice(portable).expect("computed");
        let zip = package(&out.0, Some(&c2), false).expect("package").zip;
        assert_eq!(archive_digest(&zip, taskid, false).expect("digest"), packaged.digest);
        // Another file under the same name is another digest.
        std::fs::write(out.0.join("result.txt"), b"hello moon\n").expect("write");
        let forged = package(&out.0, Some(&c2), false).expect("package").zip;
        assert_ne!(archive_digest(&forged, taskid, false).expect("digest"), packaged.digest);
        assert!(matches!(archive_digest(b"not a zip", taskid, false), Err(ArchiveError::Zip(_))));
    }
}
