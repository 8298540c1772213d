//! Reading key, PIN, token and certificate files named in key URIs: bounded in size,
//! never from a device (`/dev/zero` would never end), and with a warning when a secret
//! file can be read by group or others.
//!
//! Permissions are warned about, not refused: a key file readable by others is already
//! exposed, and refusing would only stop the one user who can fix it (`chmod 600`) from
//! working. The warning is one line on stderr, once per file and process:
//! `hyok: warning: key file K can be read by group or others (mode 0644); run chmod 600 K`.
//! It goes away when the file is fixed, or when `HYOK_ALLOW_SHARED_SECRET_FILES=1` says the
//! sharing is intended (a key file shared with a service's group through its mode).

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Whether a file holds a secret (and so should be private to its owner).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Secrecy {
    Secret,
    Public,
}

/// Set to `1` to use group/world-readable secret files without the warning.
pub(crate) const ALLOW_SHARED_ENV: &str = "HYOK_ALLOW_SHARED_SECRET_FILES";

/// Files already warned about in this process.
static WARNED: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// Read at most `max` bytes of `path` (`what` names it in messages: "key file", "PIN
/// file"). Refuses devices and directories at once, and anything longer than `max` after
/// reading `max + 1` bytes (pipes such as `<(…)` have no size to check first).
pub(crate) fn read(
    path: &Path,
    what: &str,
    max: u64,
    secrecy: Secrecy,
) -> Result<Zeroizing<Vec<u8>>> {
    let cannot =
        |e: std::io::Error| Error::Config(format!("cannot read {what} {}: {e}", path.display()));
    let meta = std::fs::metadata(path).map_err(cannot)?;
    let ty = meta.file_type();
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ty.is_char_device() || ty.is_block_device() {
            return Err(Error::Config(format!(
                "{what} {} is a device, not a file",
                path.display()
            )));
        }
    }
    if ty.is_dir() {
        return Err(Error::Config(format!(
            "{what} {} is a directory",
            path.display()
        )));
    }
    if ty.is_file() && meta.len() > max {
        return Err(too_big(path, what, max));
    }
    if secrecy == Secrecy::Secret && ty.is_file() {
        warn_if_shared(path, what, &meta);
    }
    let f = std::fs::File::open(path).map_err(cannot)?;
    let mut buf = Zeroizing::new(Vec::new());
    f.take(max + 1).read_to_end(&mut buf).map_err(cannot)?;
    if buf.len() as u64 > max {
        return Err(too_big(path, what, max));
    }
    Ok(buf)
}

fn too_big(path: &Path, what: &str, max: u64) -> Error {
    Error::Config(format!(
        "{what} {} is larger than {max} bytes",
        path.display()
    ))
}

#[cfg(unix)]
fn warn_if_shared(path: &Path, what: &str, meta: &std::fs::Metadata) {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 == 0 || std::env::var_os(ALLOW_SHARED_ENV).is_some_and(|v| v == "1") {
        return;
    }
    let mut warned = WARNED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if warned.insert(path.to_path_buf()) {
        // The path is the user's own argument; escape control characters all the same.
        let shown = path.display().to_string().escape_debug().to_string();
        eprintln!(
            "hyok: warning: {what} {shown} can be read by group or others (mode {mode:04o}); run chmod 600 {shown}"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_: &Path, _: &str, _: &std::fs::Metadata) {}

/// Whether `path` was warned about (tests).
#[cfg(test)]
fn was_warned(path: &Path) -> bool {
    WARNED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .contains(path)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn devices_directories_and_oversized_files_are_refused_at_once() {
        for dev in ["/dev/zero", "/dev/urandom"] {
            let e = read(Path::new(dev), "key file", 32, Secrecy::Secret).unwrap_err();
            assert!(e.to_string().contains("is a device"), "{e}");
        }
        let dir = tempfile::tempdir().unwrap();
        let e = read(dir.path(), "key file", 32, Secrecy::Secret).unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
        let big = dir.path().join("big");
        std::fs::write(&big, [7u8; 33]).unwrap();
        let e = read(&big, "key file", 32, Secrecy::Secret).unwrap_err();
        assert!(e.to_string().contains("larger than 32 bytes"), "{e}");
        let ok = dir.path().join("ok");
        std::fs::write(&ok, [7u8; 32]).unwrap();
        std::fs::set_permissions(&ok, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            *read(&ok, "key file", 32, Secrecy::Secret).unwrap(),
            [7u8; 32]
        );
        assert!(!was_warned(&ok));
    }

    #[test]
    fn shared_secret_files_are_warned_about_public_ones_not() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        std::fs::write(&shared, b"1234").unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o644)).unwrap();
        read(&shared, "PIN file", 16, Secrecy::Secret).unwrap();
        assert!(was_warned(&shared));
        let public = dir.path().join("public");
        std::fs::write(&public, b"PEM").unwrap();
        std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o644)).unwrap();
        read(&public, "public key", 16, Secrecy::Public).unwrap();
        assert!(!was_warned(&public));
    }
}
