//! Where a branch key store keeps its version files: the [`BranchFiles`] trait, and its
//! implementation on a local directory ([`DirFiles`]). The facade implements it on an object
//! store as well (a `.hyok/branches/` prefix in a bucket).
//!
//! The store needs three guarantees from a backend, and nothing else:
//! - [`BranchFiles::create`] is atomic create-if-absent: of two writers creating one name,
//!   exactly one succeeds (the other gets `Ok(false)`), so no version is ever overwritten;
//! - [`BranchFiles::replace`] swaps a file's whole content atomically (readers see the old
//!   or the new bytes, never a mix);
//! - reads are bounded: at most [`MAX_FILE_BYTES`] per file and [`MAX_VERSIONS`] files.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::error::{Error, Result};

/// Largest version file read.
pub const MAX_FILE_BYTES: u64 = 256 * 1024;
/// Most version files (and branch key names) read.
pub const MAX_VERSIONS: usize = 100_000;

/// The storage of a branch key store: one folder per branch key name, one small file per
/// version. Names and file names are checked by the caller before they reach a backend.
#[async_trait]
pub trait BranchFiles: Send + Sync + std::fmt::Debug {
    /// Where the store is, for messages (a directory or a URL).
    fn location(&self) -> String;
    /// The branch key names present (not checked; the caller filters).
    async fn names(&self) -> Result<Vec<String>>;
    /// Every file of branch key `name` as (file name, bytes); `None` if the name is absent.
    /// A file larger than [`MAX_FILE_BYTES`] is an error, as are more than [`MAX_VERSIONS`].
    async fn files(&self, name: &str) -> Result<Option<Vec<(String, Vec<u8>)>>>;
    /// Create `name/file` with `bytes` if it does not exist: `Ok(false)` if it does.
    async fn create(&self, name: &str, file: &str, bytes: &[u8]) -> Result<bool>;
    /// Replace the content of the existing `name/file` atomically.
    async fn replace(&self, name: &str, file: &str, bytes: &[u8]) -> Result<()>;
    /// Remove `name/file`.
    async fn remove(&self, name: &str, file: &str) -> Result<()>;
}

/// Version files in a local directory: `ROOT/NAME/FILE`, created with a hard link from a
/// private temporary file (fails if the name exists), replaced with an atomic rename.
#[derive(Clone, Debug)]
pub struct DirFiles {
    root: PathBuf,
}

impl DirFiles {
    /// Files under directory `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Config(format!("branch key store: {what} {}: {e}", path.display()))
}

#[async_trait]
impl BranchFiles for DirFiles {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    async fn names(&self) -> Result<Vec<String>> {
        let rd = match fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("cannot read", &self.root, e)),
        };
        let mut names = Vec::new();
        for entry in rd.take(MAX_VERSIONS) {
            let entry = entry.map_err(|e| io_err("cannot read", &self.root, e))?;
            if let Some(n) = entry.file_name().to_str() {
                if entry.path().is_dir() {
                    names.push(n.to_string());
                }
            }
        }
        Ok(names)
    }

    async fn files(&self, name: &str) -> Result<Option<Vec<(String, Vec<u8>)>>> {
        let dir = self.root.join(name);
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("cannot read", &dir, e)),
        };
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| io_err("cannot read", &dir, e))?;
            let Some(file) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if file.starts_with('.') {
                continue; // a temporary file of a writer
            }
            if out.len() >= MAX_VERSIONS {
                return Err(Error::Config(format!(
                    "branch key {name}: more than {MAX_VERSIONS} versions"
                )));
            }
            let path = entry.path();
            let f = fs::File::open(&path).map_err(|e| io_err("cannot open", &path, e))?;
            let mut bytes = Vec::new();
            f.take(MAX_FILE_BYTES + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| io_err("cannot read", &path, e))?;
            if bytes.len() as u64 > MAX_FILE_BYTES {
                return Err(Error::Config(format!(
                    "branch key store: {}: file too large",
                    path.display()
                )));
            }
            out.push((file, bytes));
        }
        Ok(Some(out))
    }

    async fn create(&self, name: &str, file: &str, bytes: &[u8]) -> Result<bool> {
        let dir = self.root.join(name);
        fs::create_dir_all(&dir).map_err(|e| io_err("cannot create", &dir, e))?;
        let path = dir.join(file);
        let tmp = write_temp(&dir, bytes)?;
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                sync_dir(&dir);
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io_err("cannot create", &path, e)),
        }
    }

    async fn replace(&self, name: &str, file: &str, bytes: &[u8]) -> Result<()> {
        let dir = self.root.join(name);
        let path = dir.join(file);
        let tmp = write_temp(&dir, bytes)?;
        fs::rename(&tmp, &path).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io_err("cannot replace", &path, e)
        })?;
        sync_dir(&dir);
        Ok(())
    }

    async fn remove(&self, name: &str, file: &str) -> Result<()> {
        let dir = self.root.join(name);
        let path = dir.join(file);
        fs::remove_file(&path).map_err(|e| io_err("cannot remove", &path, e))?;
        sync_dir(&dir);
        Ok(())
    }
}

/// Write `bytes` to a new private file (0600, O_EXCL) in `dir`, synced; its path.
fn write_temp(dir: &Path, bytes: &[u8]) -> Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    for _ in 0..8 {
        let mut r = [0u8; 8];
        aws_lc_rs::rand::fill(&mut r)
            .map_err(|_| Error::Core(hyok_core::Error::Crypto("random")))?;
        let name: String = r.iter().map(|b| format!("{b:02x}")).collect();
        let path = dir.join(format!(".tmp-{name}"));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(mut f) => {
                let res = f.write_all(bytes).and_then(|()| f.sync_all());
                if let Err(e) = res {
                    let _ = fs::remove_file(&path);
                    return Err(io_err("cannot write", &path, e));
                }
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err("cannot create", &path, e)),
        }
    }
    Err(Error::Config(format!(
        "branch key store: cannot create a temporary file in {}",
        dir.display()
    )))
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}
