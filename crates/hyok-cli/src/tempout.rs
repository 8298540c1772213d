//! The temporary file a regular output file is written to, beside its target, until the
//! command commits it.
//!
//! On Linux it is made with `O_TMPFILE`: it has no name until `linkat` gives it its target's
//! name on commit, so nothing named is left behind whatever ends the process (an error, a
//! signal, SIGKILL, a power loss). Where the filesystem cannot make unnamed files (or
//! `/proc` is missing), it is a named `.hyok-XXXXXX.partial` file, registered with
//! [`crate::signals`] so that SIGINT/SIGTERM/SIGHUP remove it, and removed on drop.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::signals;

/// A temporary output file; dropping it without [`TempOut::persist`] discards it.
pub(crate) struct TempOut {
    file: File,
    kind: Kind,
    dir: PathBuf,
}

enum Kind {
    /// No name yet (`O_TMPFILE`).
    #[cfg(target_os = "linux")]
    Unnamed,
    /// A named file, registered for removal on signals; `None` once persisted.
    Named(Option<PathBuf>),
}

impl TempOut {
    /// A new, empty temporary file (mode 0600) in `dir`.
    pub(crate) fn new_in(dir: &Path) -> io::Result<Self> {
        #[cfg(target_os = "linux")]
        if let Some(file) = unnamed(dir) {
            return Ok(Self {
                file,
                kind: Kind::Unnamed,
                dir: dir.to_path_buf(),
            });
        }
        let mut named = signals::registry();
        let tmp = tempfile::Builder::new()
            .prefix(".hyok-")
            .suffix(".partial")
            .tempfile_in(dir)?;
        let (file, path) = tmp.keep().map_err(|e| e.error)?;
        signals::add(&mut named, &path);
        Ok(Self {
            file,
            kind: Kind::Named(Some(path)),
            dir: dir.to_path_buf(),
        })
    }

    /// The open file.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// Whether the file has no name (the `O_TMPFILE` path).
    #[cfg(test)]
    pub(crate) fn is_unnamed(&self) -> bool {
        !matches!(self.kind, Kind::Named(_))
    }

    /// Give the file the name `target`. Without `replace`, an existing `target` is an
    /// `AlreadyExists` error and stays as it is; with it, a regular file `target` is
    /// replaced atomically (rename).
    pub(crate) fn persist(mut self, target: &Path, replace: bool) -> io::Result<()> {
        match &mut self.kind {
            #[cfg(target_os = "linux")]
            Kind::Unnamed => {
                if !replace {
                    return link_unnamed(&self.file, target);
                }
                // Link under a fresh name, then rename over the target; the name exists
                // for two system calls, registered so that a signal removes it.
                let mut named = signals::registry();
                let mut attempt = 0u32;
                let tmp = loop {
                    let candidate = self
                        .dir
                        .join(format!(".hyok-{}-{attempt}.partial", std::process::id()));
                    match link_unnamed(&self.file, &candidate) {
                        Ok(()) => break candidate,
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 100 => {
                            attempt += 1;
                        }
                        Err(e) => return Err(e),
                    }
                };
                signals::add(&mut named, &tmp);
                let res = std::fs::rename(&tmp, target);
                if res.is_err() {
                    let _ = std::fs::remove_file(&tmp);
                }
                signals::forget(&mut named, &tmp);
                res
            }
            Kind::Named(path) => {
                let mut named = signals::registry();
                let Some(p) = path.take() else {
                    return Err(io::Error::other("temporary file already persisted"));
                };
                let res = if replace {
                    std::fs::rename(&p, target)
                } else {
                    // A hard link fails if the target exists: no window for a clobber.
                    std::fs::hard_link(&p, target).map(|()| {
                        let _ = std::fs::remove_file(&p);
                    })
                };
                if res.is_err() {
                    let _ = std::fs::remove_file(&p);
                }
                signals::forget(&mut named, &p);
                res
            }
        }
    }
}

impl Drop for TempOut {
    fn drop(&mut self) {
        if let Kind::Named(Some(p)) = &self.kind {
            // Remove first, then forget: a signal in between finds nothing to remove.
            let mut named = signals::registry();
            let _ = std::fs::remove_file(p);
            signals::forget(&mut named, p);
        }
    }
}

/// An unnamed file in `dir`, if the filesystem and `/proc` allow linking it later.
#[cfg(target_os = "linux")]
fn unnamed(dir: &Path) -> Option<File> {
    use rustix::fs::{Mode, OFlags, CWD};
    if !Path::new("/proc/self/fd").is_dir() {
        return None;
    }
    let fd = rustix::fs::openat(
        CWD,
        dir,
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .ok()?;
    Some(File::from(fd))
}

/// Give the unnamed `file` the name `target` (fails if `target` exists).
#[cfg(target_os = "linux")]
fn link_unnamed(file: &File, target: &Path) -> io::Result<()> {
    use rustix::fs::{AtFlags, CWD};
    use std::os::fd::AsRawFd;
    let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
    rustix::fs::linkat(
        CWD,
        proc_path.as_str(),
        CWD,
        target,
        AtFlags::SYMLINK_FOLLOW,
    )
    .map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn nothing_is_named_until_persist_and_drop_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let t = TempOut::new_in(dir.path()).unwrap();
        if t.is_unnamed() {
            assert!(names(dir.path()).is_empty());
        }
        drop(t);
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn persist_creates_refuses_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out");
        let mut t = TempOut::new_in(dir.path()).unwrap();
        t.file.write_all(b"one").unwrap();
        t.persist(&target, false).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"one");

        let mut t = TempOut::new_in(dir.path()).unwrap();
        t.file.write_all(b"two").unwrap();
        let err = t.persist(&target, false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&target).unwrap(), b"one");
        assert_eq!(names(dir.path()), ["out"]);

        let mut t = TempOut::new_in(dir.path()).unwrap();
        t.file.write_all(b"three").unwrap();
        t.persist(&target, true).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"three");
        assert_eq!(names(dir.path()), ["out"]);
        assert!(!signals::registry()
            .iter()
            .any(|p| p.starts_with(dir.path())));
    }
}
