//! A task's result: its digest as PoCo checks it, the hash and seal a worker contributes, and the zip the pool
//! stores and serves.
//!
//! The digest follows iExec's worker (`ResultService.computeResultDigest` in iexec-worker, with
//! `FileHashUtils.getFileTreeSha256` and `HashUtils.concatenateAndHash` in iexec-common), because replicas of
//! one task may run on iExec's own workers and on ours, and PoCo's consensus compares their digests bit for bit:
//! - **the deal has a callback** ("web3" result): `keccak256(callback-data)`, the bytes the hex string of
//!   `computed.json`'s `callback-data` decodes to;
//! - **otherwise** ("web2" result), on `computed.json`'s `deterministic-output-path`:
//!   - a file: `sha256(file bytes)`;
//!   - a folder: `keccak256(sha256(f1) ‖ sha256(f2) ‖ …)` over the folder's *direct* entries sorted by name
//!     (byte order); iExec does not descend into sub-folders, and an entry it cannot read as a file (a
//!     sub-folder) adds nothing to the concatenation. We reproduce that quirk rather than "fix" it, so that our
//!     digests agree with theirs.
//!
//! One deliberate difference: symbolic links are not followed (iExec's Java follows them). Resolved on the host,
//! a link written by a container could name any host file.
//!
//! The choice between the two is made by the deal (callback address non-zero), not by the presence of
//! `callback-data`, as in iExec. A missing `computed.json`, a missing deterministic path, or an empty
//! callback-data when the deal has a callback, is an error: iExec's worker fails the task then too.

use super::outdir::{Kind, OutDir};
use alloy::primitives::{Address, B256, keccak256};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Component, Path, PathBuf};

/// The app's `computed.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ComputedJson {
    /// The file or folder whose content is the deterministic part of the result, as the app saw it (usually
    /// under `/iexec_out` in a container, or under `IEXEC_OUT` on the host).
    #[serde(rename = "deterministic-output-path", default)]
    pub deterministic_output_path: Option<String>,
    /// Hex bytes handed to the deal's callback contract at finalize.
    #[serde(rename = "callback-data", default)]
    pub callback_data: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ResultError {
    #[error("the app wrote no computed.json")]
    MissingComputedJson,
    #[error("computed.json has no deterministic-output-path")]
    NoDeterministicPath,
    #[error("the deal has a callback but computed.json has no callback-data")]
    NoCallbackData,
    #[error("callback-data is not hex: {0}")]
    BadCallbackData(String),
    #[error("deterministic-output-path {0:?} is outside the output folder")]
    OutsideOutput(String),
    #[error("deterministic-output-path {0} does not exist")]
    MissingOutput(PathBuf),
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("packaging the output folder")]
    Zip(#[from] zip::result::ZipError),
}

/// A packaged result.
#[derive(Debug, Clone)]
pub struct Packaged {
    /// The output folder as a zip archive (what the pool's result store serves).
    pub zip: Vec<u8>,
    pub digest: B256,
}

/// Zips the output folder and computes the result digest.
pub fn package(out_dir: &Path, computed: Option<&ComputedJson>, has_callback: bool) -> Result<Packaged, ResultError> {
    let digest = result_digest(out_dir, computed, has_callback)?;
    let zip = zip_folder(out_dir)?;
    Ok(Packaged { zip, digest })
}

/// The result digest of a task, by the rule of the module documentation.
pub fn result_digest(out_dir: &Path, computed: Option<&ComputedJson>, has_callback: bool) -> Result<B256, ResultError> {
    let computed = computed.ok_or(ResultError::MissingComputedJson)?;
    if has_callback {
        let data = computed.callback_data.as_deref().filter(|d| !d.is_empty()).ok_or(ResultError::NoCallbackData)?;
        let bytes = alloy::hex::decode(data).map_err(|e| ResultError::BadCallbackData(e.to_string()))?;
        return Ok(keccak256(bytes));
    }
    let declared = computed.deterministic_output_path.as_deref().ok_or(ResultError::NoDeterministicPath)?;
    let path = resolve_in_out(out_dir, declared)?;
    let rel = path.strip_prefix(out_dir).map_err(|_| ResultError::OutsideOutput(declared.to_owned()))?;
    let out = OutDir::open(out_dir).map_err(io_err("opening", out_dir))?;
    file_tree_digest(&out, rel, &path)
}

/// `keccak256(taskid ‖ digest)`, the `resultHash` a worker contributes.
pub fn result_hash(task_id: B256, digest: B256) -> B256 {
    keccak256([task_id.as_slice(), digest.as_slice()].concat())
}

/// `keccak256(worker ‖ taskid ‖ digest)`, the `resultSeal` a worker contributes.
pub fn result_seal(worker: Address, task_id: B256, digest: B256) -> B256 {
    keccak256([worker.as_slice(), task_id.as_slice(), digest.as_slice()].concat())
}

/// Maps the app's view of its deterministic output to a path in `out_dir`: a path under `/iexec_out` (the
/// container's view) or under `out_dir` itself (a native app's view), or relative to `out_dir`. Anything that
/// would leave `out_dir` is refused.
pub fn resolve_in_out(out_dir: &Path, declared: &str) -> Result<PathBuf, ResultError> {
    let p = Path::new(declared);
    let rel = p
        .strip_prefix("/iexec_out")
        .or_else(|_| p.strip_prefix(out_dir))
        .map(Path::to_path_buf)
        .or_else(|_| if p.is_relative() { Ok(p.to_path_buf()) } else { Err(()) })
        .map_err(|()| ResultError::OutsideOutput(declared.to_owned()))?;
    if rel.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(ResultError::OutsideOutput(declared.to_owned()));
    }
    Ok(out_dir.join(rel))
}

fn io_err(what: &str, p: &Path) -> impl FnOnce(std::io::Error) -> ResultError {
    let context = format!("{what} {}", p.display());
    move |source| ResultError::Io { context, source }
}

fn sha256_file(mut f: std::fs::File, path: &Path) -> Result<[u8; 32], ResultError> {
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(io_err("reading", path))?;
    Ok(h.finalize().into())
}

/// iExec's `getFileTreeSha256` on `rel` in `out` (`path` is the same, for messages): see the module
/// documentation. Nothing is followed through a link (see [`OutDir`]).
fn file_tree_digest(out: &OutDir, rel: &Path, path: &Path) -> Result<B256, ResultError> {
    match out.kind_of(rel).map_err(|_| ResultError::MissingOutput(path.to_path_buf()))? {
        None => return Err(ResultError::MissingOutput(path.to_path_buf())),
        // Resolved on the host, an app's link could name any host file.
        Some(Kind::Other) => return Err(ResultError::OutsideOutput(path.display().to_string())),
        Some(Kind::File) => {
            let f = out.open_file(rel).map_err(io_err("opening", path))?;
            let f = f.ok_or_else(|| ResultError::OutsideOutput(path.display().to_string()))?;
            return Ok(B256::from(sha256_file(f, path)?));
        }
        Some(Kind::Dir) => {}
    }
    let mut names: Vec<PathBuf> = out
        .entries(rel)
        .map_err(io_err("reading", path))?
        .into_iter()
        .filter(|(_, k)| *k == Kind::File)
        .map(|(p, _)| p)
        .collect();
    // Java's File.compareTo on Unix compares the path strings; for the same parent that is the names' order.
    names.sort();
    let mut concat = Vec::with_capacity(names.len() * 32);
    for p in names {
        // A file that turned into something else since the listing adds nothing, as a sub-folder does.
        if let Some(f) = out.open_file(&p).map_err(io_err("opening", &path.join(&p)))? {
            concat.extend_from_slice(&sha256_file(f, &p)?);
        }
    }
    Ok(keccak256(concat))
}

/// The output folder as a zip: entries at the archive's root (as iExec's result archives), in sorted order, with
/// a fixed timestamp and mode, so that the same output gives the same bytes on every worker.
pub fn zip_folder(out_dir: &Path) -> Result<Vec<u8>, ResultError> {
    // Symbolic links and special files are left out: they would point outside the result.
    let out = OutDir::open(out_dir).map_err(io_err("opening", out_dir))?;
    let (dirs, files) = out.walk().map_err(io_err("reading", out_dir))?;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o644);
    let name = |p: &Path| p.to_string_lossy().replace('\\', "/");
    for d in &dirs {
        w.add_directory(name(d), opts.unix_permissions(0o755))?;
    }
    for f in &files {
        let abs = out_dir.join(f);
        // Swapped for something else since the walk (by a child that outlived the app): left out.
        let Some(mut src) = out.open_file(f).map_err(io_err("opening", &abs))? else { continue };
        w.start_file(name(f), opts)?;
        std::io::copy(&mut src, &mut w).map_err(io_err("zipping", &abs))?;
    }
    let mut cursor = w.finish()?;
    cursor.flush().map_err(io_err("zipping", out_dir))?;
    Ok(cursor.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dragon-result-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }

    fn computed(path: &str) -> ComputedJson {
        ComputedJson { deterministic_output_path: Some(path.to_owned()), callback_data: None }
    }

    #[test]
    fn file_digest_is_its_sha256() {
        let d = tmp("file");
        std::fs::write(d.join("result.txt"), b"hello").expect("write");
        let got = result_digest(&d, Some(&computed("/iexec_out/result.txt")), false).expect("digest");
        // sha256("hello"), as in iExec's HashUtils tests.
        let want: B256 = "0x2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824".parse().expect("hex");
        assert_eq!(got, want);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn folder_digest_is_keccak_of_sorted_top_level_sha256s() {
        let d = tmp("folder");
        std::fs::write(d.join("b"), b"2").expect("write");
        std::fs::write(d.join("a"), b"1").expect("write");
        std::fs::create_dir(d.join("sub")).expect("mkdir");
        std::fs::write(d.join("sub/ignored"), b"x").expect("write");
        let sha = |b: &[u8]| -> [u8; 32] { Sha256::digest(b).into() };
        let want = keccak256([sha(b"1"), sha(b"2")].concat());
        assert_eq!(result_digest(&d, Some(&computed("/iexec_out")), false).expect("digest"), want);
        assert_eq!(result_digest(&d, Some(&computed(".")), false).expect("digest"), want);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn callback_digest_is_keccak_of_the_data_bytes() {
        let d = tmp("callback");
        let c = ComputedJson { deterministic_output_path: None, callback_data: Some("0x0102".to_owned()) };
        assert_eq!(result_digest(&d, Some(&c), true).expect("digest"), keccak256([1u8, 2]));
        assert!(matches!(result_digest(&d, Some(&c), false), Err(ResultError::NoDeterministicPath)));
        assert!(matches!(result_digest(&d, None, false), Err(ResultError::MissingComputedJson)));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn paths_outside_the_output_are_refused() {
        let out = Path::new("/work/task/out");
        assert_eq!(resolve_in_out(out, "/iexec_out/a/b").expect("inside"), out.join("a/b"));
        assert_eq!(resolve_in_out(out, "/work/task/out/x").expect("inside"), out.join("x"));
        assert!(resolve_in_out(out, "/iexec_out/../etc/passwd").is_err());
        assert!(resolve_in_out(out, "/etc/passwd").is_err());
        assert!(resolve_in_out(out, "../x").is_err());
    }

    #[test]
    fn zip_is_reproducible_and_holds_the_tree() {
        let d = tmp("zip");
        std::fs::write(d.join("computed.json"), br#"{"deterministic-output-path":"/iexec_out/r"}"#).expect("write");
        std::fs::create_dir(d.join("r")).expect("mkdir");
        std::fs::write(d.join("r/data.bin"), vec![7u8; 10_000]).expect("write");
        let a = zip_folder(&d).expect("zip");
        let b = zip_folder(&d).expect("zip");
        assert_eq!(a, b);
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(a)).expect("read back");
        let mut names: Vec<String> = z.file_names().map(|n| n.expect("entry name").into_owned()).collect();
        names.sort();
        assert_eq!(names, ["computed.json", "r/", "r/data.bin"]);
        let mut f = z.by_name("r/data.bin").expect("entry");
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut buf).expect("inflate");
        assert_eq!(buf, vec![7u8; 10_000]);
        let _ = std::fs::remove_dir_all(&d);
    }
}
