//! An app's output folder, read without following anything the app put there.
//!
//! The worker reads the output folder with its own rights (root, when native apps run as another user), after an
//! app wrote it as it pleased. Path-based reading would follow a symbolic link named `computed.json`, or a
//! sub-folder swapped for a link to `/proc/<worker>/` by a child that outlived the app (one that left its process
//! group), and put a file the app could not read into the public result. So every read here goes from an open
//! folder to the next entry with `openat(…, O_NOFOLLOW)`: a link is never followed, whatever is swapped when,
//! and a name is judged by what was actually opened (`fstat`), so a FIFO or a device is never read (opened
//! `O_NONBLOCK`, it cannot block the worker either).

use rustix::fs::{AtFlags, CWD, Dir, FileType, Mode, OFlags, fstat, openat, statat, unlinkat};
use std::ffi::OsStr;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

const DIR: OFlags = OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);
const FILE: OFlags =
    OFlags::RDONLY.union(OFlags::NOFOLLOW).union(OFlags::NONBLOCK).union(OFlags::CLOEXEC).union(OFlags::NOCTTY);

/// An output folder, opened.
#[derive(Debug)]
pub struct OutDir {
    fd: OwnedFd,
}

/// What an entry of the folder is, as far as the result is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    /// A symbolic link, FIFO, socket or device: left out of the result.
    Other,
}

fn kind(t: FileType) -> Kind {
    match t {
        FileType::Directory => Kind::Dir,
        FileType::RegularFile => Kind::File,
        _ => Kind::Other,
    }
}

/// The path's components, which must all be plain names (no `..`, no root).
fn names(rel: &Path) -> io::Result<Vec<&OsStr>> {
    rel.components()
        .filter(|c| *c != Component::CurDir)
        .map(|c| match c {
            Component::Normal(n) => Ok(n),
            _ => Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{} leaves the folder", rel.display()))),
        })
        .collect()
}

impl OutDir {
    /// Opens the folder at `path`; its last component must not be a link (the folders above it are the worker's).
    pub fn open(path: &Path) -> io::Result<OutDir> {
        Ok(OutDir { fd: openat(CWD, path, DIR, Mode::empty())? })
    }

    /// The folder at `rel` under this one, no link followed on the way.
    fn dir_at(&self, rel: &[&OsStr]) -> io::Result<OwnedFd> {
        let mut fd = rustix::io::dup(&self.fd)?;
        for name in rel {
            fd = openat(&fd, *name, DIR, Mode::empty())?;
        }
        Ok(fd)
    }

    /// What `rel` is (not following a final link); `None` when it does not exist.
    pub fn kind_of(&self, rel: &Path) -> io::Result<Option<Kind>> {
        let n = names(rel)?;
        let Some((last, parents)) = n.split_last() else { return Ok(Some(Kind::Dir)) };
        let dir = self.dir_at(parents)?;
        match statat(&dir, *last, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(kind(FileType::from_raw_mode(st.st_mode)))),
            Err(e) if e == rustix::io::Errno::NOENT => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The regular file at `rel`, opened; `None` when it is anything else (a link, a FIFO, a folder) or absent.
    pub fn open_file(&self, rel: &Path) -> io::Result<Option<std::fs::File>> {
        let n = names(rel)?;
        let Some((last, parents)) = n.split_last() else { return Ok(None) };
        let dir = match self.dir_at(parents) {
            Ok(d) => d,
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let fd = match openat(&dir, *last, FILE, Mode::empty()) {
            Ok(fd) => fd,
            // ELOOP: a link.
            Err(e) if e == rustix::io::Errno::NOENT || e == rustix::io::Errno::LOOP => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if kind(FileType::from_raw_mode(fstat(&fd)?.st_mode)) != Kind::File {
            return Ok(None);
        }
        Ok(Some(std::fs::File::from(fd)))
    }

    /// The entries directly in the folder at `rel` (`.` and `..` left out), unsorted.
    pub fn entries(&self, rel: &Path) -> io::Result<Vec<(PathBuf, Kind)>> {
        let dir = self.dir_at(&names(rel)?)?;
        let mut out = Vec::new();
        for entry in Dir::read_from(&dir)? {
            let entry = entry?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            let k = match entry.file_type() {
                FileType::Unknown => match statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => kind(FileType::from_raw_mode(st.st_mode)),
                    Err(e) if e == rustix::io::Errno::NOENT => continue,
                    Err(e) => return Err(e.into()),
                },
                t => kind(t),
            };
            out.push((rel.join(name), k));
        }
        Ok(out)
    }

    /// Every folder and regular file under this one (links and special files left out), as relative paths,
    /// each list sorted.
    pub fn walk(&self) -> io::Result<(Vec<PathBuf>, Vec<PathBuf>)> {
        let (mut dirs, mut files) = (Vec::new(), Vec::new());
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            for (path, k) in self.entries(&rel)? {
                match k {
                    Kind::Dir => {
                        dirs.push(path.clone());
                        stack.push(path);
                    }
                    Kind::File => files.push(path),
                    Kind::Other => {}
                }
            }
        }
        dirs.sort();
        files.sort();
        Ok((dirs, files))
    }

    /// Creates the file `name` directly in the folder, replacing a file of that name (never writing through a
    /// link the app left there).
    pub fn create(&self, name: &str) -> io::Result<std::fs::File> {
        match unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::NOENT => {}
            Err(e) => return Err(e.into()),
        }
        // O_EXCL: if something appeared in between, fail rather than follow it.
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        Ok(std::fs::File::from(openat(&self.fd, name, flags, Mode::from_raw_mode(0o644))?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dragon-outdir-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }

    #[test]
    fn links_fifos_and_linked_folders_are_never_followed() {
        let d = tmp("links");
        let out = d.join("out");
        std::fs::create_dir_all(out.join("sub")).expect("mkdir");
        std::fs::write(out.join("sub/ok.txt"), b"ok").expect("write");
        let secret = d.join("secret");
        std::fs::create_dir_all(&secret).expect("mkdir");
        std::fs::write(secret.join("key"), b"worker key").expect("write");
        std::os::unix::fs::symlink(secret.join("key"), out.join("computed.json")).expect("symlink");
        std::os::unix::fs::symlink(&secret, out.join("linked")).expect("symlink");
        std::os::unix::fs::symlink("/proc/self", out.join("proc")).expect("symlink");
        let fifo = std::process::Command::new("mkfifo").arg(out.join("fifo")).status().expect("mkfifo");
        assert!(fifo.success());

        let o = OutDir::open(&out).expect("open");
        assert!(o.open_file(Path::new("computed.json")).expect("open").is_none(), "a link is not read");
        assert!(o.open_file(Path::new("fifo")).expect("open").is_none(), "a FIFO is not read (nor waited on)");
        assert!(o.open_file(Path::new("linked/key")).is_err(), "no path through a linked folder");
        assert!(o.open_file(Path::new("proc/environ")).is_err());
        assert!(o.open_file(Path::new("../secret/key")).is_err());
        let mut s = String::new();
        o.open_file(Path::new("sub/ok.txt")).expect("open").expect("a file").read_to_string(&mut s).expect("read");
        assert_eq!(s, "ok");
        let (dirs, files) = o.walk().expect("walk");
        assert_eq!(dirs, [PathBuf::from("sub")]);
        assert_eq!(files, [PathBuf::from("sub/ok.txt")]);
        assert_eq!(o.kind_of(Path::new("linked")).expect("kind"), Some(Kind::Other));
        assert_eq!(o.kind_of(Path::new("absent")).expect("kind"), None);

        // The folder itself swapped for a link: refused.
        let moved = d.join("moved");
        std::fs::rename(&out, &moved).expect("mv");
        std::os::unix::fs::symlink(&secret, &out).expect("symlink");
        assert!(OutDir::open(&out).is_err());

        // Writing a file where the app left a link replaces the link; the target is untouched.
        let o = OutDir::open(&moved).expect("open");
        std::os::unix::fs::symlink(secret.join("key"), moved.join("stdout.txt")).expect("symlink");
        o.create("stdout.txt").expect("create").write_all(b"log").expect("write");
        assert_eq!(std::fs::read(secret.join("key")).expect("read"), b"worker key");
        assert_eq!(std::fs::read(moved.join("stdout.txt")).expect("read"), b"log");
        let _ = std::fs::remove_dir_all(&d);
    }
}
