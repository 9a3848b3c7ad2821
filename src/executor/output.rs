//! Watching what a run leaves in its output folder: its size, bounded while the app runs, and `computed.json`.

use super::error::ExecError;
use super::outdir;
use super::result::ComputedJson;
use std::path::Path;
use std::time::Duration;

/// What one file or folder counts at least, as it costs at least one block on disk: an app cannot get around the
/// output bound with a flood of empty files, and the walk that measures it stays short.
const ENTRY_COST: u64 = 4096;

/// The size of the tree under `dir` (symbolic links not followed), each entry counting at least one 4 KiB block;
/// the walk stops as soon as it passes `stop_above`. Entries that vanish while it walks (a running app deleting
/// its temporary files) are skipped.
pub fn dir_size(dir: &Path, stop_above: u64) -> std::io::Result<u64> {
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(entries) => entries,
            Err(e) if gone(&e) && d != dir => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let (path, meta) = match entry.and_then(|e| e.metadata().map(|m| (e.path(), m))) {
                Ok(found) => found,
                Err(e) if gone(&e) => continue,
                Err(e) => return Err(e),
            };
            total += meta.len().max(ENTRY_COST);
            if total > stop_above {
                return Ok(total);
            }
            if meta.is_dir() {
                stack.push(path);
            }
        }
    }
    Ok(total)
}

/// Reads `computed.json` from an output folder, if the app wrote one (as a regular file: a link is not followed,
/// see [`outdir`]).
pub(super) fn read_computed(out_dir: &Path) -> Result<Option<ComputedJson>, ExecError> {
    let path = out_dir.join("computed.json");
    let io = |source| ExecError::Io { context: format!("reading {}", path.display()), source };
    let out = outdir::OutDir::open(out_dir).map_err(io)?;
    match out.kind_of(Path::new("computed.json")).map_err(io)? {
        None => return Ok(None),
        Some(outdir::Kind::File) => {}
        Some(_) => return Err(ExecError::ComputedJson("it is not a regular file".into())),
    }
    let Some(mut f) = out.open_file(Path::new("computed.json")).map_err(io)? else {
        return Err(ExecError::ComputedJson("it is not a regular file".into()));
    };
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut f, &mut bytes).map_err(io)?;
    serde_json::from_slice(&bytes).map(Some).map_err(|e| ExecError::ComputedJson(e.to_string()))
}

/// Fails with [`ExecError::OutputTooLarge`] when the output folder is over its bound.
pub(super) fn check_out_size(out_dir: &Path, limit: u64) -> Result<(), ExecError> {
    let size = dir_size(out_dir, limit)
        .map_err(|source| ExecError::Io { context: format!("measuring {}", out_dir.display()), source })?;
    if size > limit { Err(ExecError::OutputTooLarge { what: "output folder", size, limit }) } else { Ok(()) }
}

/// How often a running app's output folder is measured.
pub(super) const OUT_CHECK_EVERY: Duration = Duration::from_millis(500);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_size_counts_blocks_and_stops_early() {
        let d = std::env::temp_dir().join(format!("dragon-dirsize-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("sub")).expect("mkdir");
        std::fs::write(d.join("big"), vec![0u8; 10_000]).expect("write");
        std::fs::write(d.join("sub/empty"), b"").expect("write");
        // big (10 000) + sub (a folder: one block) + empty (one block).
        assert_eq!(dir_size(&d, u64::MAX).expect("size"), 10_000 + 2 * ENTRY_COST);
        assert!(dir_size(&d, 100).expect("size") > 100);
        let _ = std::fs::remove_dir_all(&d);
    }
}
