//! The user a native app runs as, other than the worker's ([`AppUser`]).

use super::error::ExecError;
use serde::Deserialize;
use std::path::Path;

/// The user a native app runs as (`--app-user`), other than the worker's: then the app can read neither the
/// worker's key (its environment and memory are another user's, and the worker is not dumpable) nor the worker's
/// files (its cache and state are private to it). Written `UID[:GID]` or `NAME[:GROUP]` (looked up in
/// `/etc/passwd` and `/etc/group`); without a group, the user's own (or a group of the same number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct AppUser {
    pub uid: u32,
    pub gid: u32,
}

/// The id of `name` in `/etc/passwd` or `/etc/group` syntax (`name:x:id:…`), with the next field as a number (a
/// user's group) when it is one.
fn lookup(file: &str, name: &str) -> Option<(u32, Option<u32>)> {
    let text = std::fs::read_to_string(file).ok()?;
    for line in text.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() > 2 && f[0] == name {
            return Some((f[2].parse().ok()?, f.get(3).and_then(|g| g.parse().ok())));
        }
    }
    None
}

impl std::str::FromStr for AppUser {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (user, group) = match s.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (s, None),
        };
        let (uid, own_gid) = match user.parse::<u32>() {
            Ok(uid) => (uid, None),
            Err(_) => lookup("/etc/passwd", user).ok_or_else(|| format!("no user {user:?} in /etc/passwd"))?,
        };
        let gid = match group {
            Some(g) => match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => lookup("/etc/group", g)
                    .map(|(gid, _)| gid)
                    .ok_or_else(|| format!("no group {g:?} in /etc/group"))?,
            },
            None => own_gid.unwrap_or(uid),
        };
        Ok(AppUser { uid, gid })
    }
}

impl TryFrom<String> for AppUser {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl std::fmt::Display for AppUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.uid, self.gid)
    }
}

impl AppUser {
    /// `nobody:nogroup` on Debian and most distributions.
    pub const NOBODY: AppUser = AppUser { uid: 65534, gid: 65534 };

    /// The user the apps of a worker run as: `chosen`, or `nobody` when the worker runs as root (root's apps could
    /// read any process's memory), or none (the worker's own user) otherwise. Switching user needs root, and root
    /// itself is refused.
    pub fn for_worker(chosen: Option<AppUser>) -> Result<Option<AppUser>, ExecError> {
        let root = rustix::process::geteuid().is_root();
        match chosen {
            Some(u) if u.uid == 0 => {
                Err(ExecError::Config("the app user must not be root: an app could read the worker's key".into()))
            }
            Some(_) if !root => Err(ExecError::Config(
                "--app-user needs a worker that runs as root (it switches to that user to start each app)".into(),
            )),
            Some(u) => Ok(Some(u)),
            None if root => Ok(Some(AppUser::NOBODY)),
            None => Ok(None),
        }
    }

    /// Checks that this user can search every folder above `path` and has the `need` rights (`0o4` read, `0o2`
    /// write, `0o1` execute or search) on `path` itself, by the mode bits (supplementary groups and ACLs aside).
    pub fn can(&self, path: &Path, need: u32) -> Result<(), String> {
        use std::os::unix::fs::MetadataExt;
        let real = path.canonicalize().map_err(|e| format!("{}: {e}", path.display()))?;
        let has = |p: &Path, bits: u32| -> Result<bool, String> {
            let m = std::fs::metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
            let shift = if m.uid() == self.uid {
                6
            } else if m.gid() == self.gid {
                3
            } else {
                0
            };
            Ok((m.mode() >> shift) & bits == bits)
        };
        for dir in real.ancestors().skip(1) {
            if !has(dir, 0o1)? {
                return Err(format!(
                    "user {self} cannot reach {}: {} is not searchable by it",
                    path.display(),
                    dir.display()
                ));
            }
        }
        if !has(&real, need)? {
            return Err(format!("user {self} lacks the rights {need:o} on {}", path.display()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_users_come_from_numbers_or_names_and_are_never_root() {
        let u = |s: &str| s.parse::<AppUser>();
        assert_eq!(u("1000"), Ok(AppUser { uid: 1000, gid: 1000 }));
        assert_eq!(u("1000:100"), Ok(AppUser { uid: 1000, gid: 100 }));
        assert_eq!(u("root:root"), Ok(AppUser { uid: 0, gid: 0 }), "names from /etc/passwd and /etc/group");
        assert!(u("no-such-user-here").is_err());
        assert!(u("1000:no-such-group-here").is_err());
        assert!(matches!(AppUser::for_worker(Some(AppUser { uid: 0, gid: 0 })), Err(ExecError::Config(_))));
    }

    #[test]
    fn an_app_user_must_reach_a_path_through_every_folder_above_it() {
        use std::os::unix::fs::PermissionsExt;
        let d = std::env::temp_dir().join(format!("dragon-appuser-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("private")).expect("mkdir");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::set_permissions(d.join("private"), std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let app = d.join("private/app.sh");
        std::fs::write(&app, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&app, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let nobody = AppUser::NOBODY;
        let err = nobody.can(&app, 0o5).expect_err("a private folder above");
        assert!(err.contains("private") && err.contains("not searchable"), "{err}");
        std::fs::set_permissions(d.join("private"), std::fs::Permissions::from_mode(0o711)).expect("chmod");
        nobody.can(&app, 0o5).expect("reachable, readable and executable");
        std::fs::set_permissions(&app, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        assert!(nobody.can(&app, 0o5).is_err(), "not readable by others");
        let _ = std::fs::remove_dir_all(&d);
    }
}
