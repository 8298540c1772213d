//! Branch keys through the facade: a key hierarchy under the customer's master keys (the
//! ESDK Hierarchical Keyring pattern; see `docs/ROTATION.md`).
//!
//! A keyring with `branch = "NAME"` in `hyok.toml` wraps each message's data key under the
//! active version of branch key NAME; its `keys` (HSM, Vault, KMIP …) wrap only the branch
//! key versions. [`crate::Session::key_manager`] builds that hierarchy; the `hyok branch`
//! commands manage the versions through [`crate::Session::branch_store`].
//!
//! The store is a directory, or a folder of an object store given as a URL (`s3://BUCKET/`
//! or `s3://BUCKET/PREFIX/`): then the versions live under `PREFIX/.hyok/branches/` of that
//! bucket ([`crate::branch_objects`]).

use std::path::{Path, PathBuf};

pub use hyok_keystore::branch::{
    check_name, edk_version, BranchKey, BranchStore, VersionId, VersionRecord, BRANCH_KEY_LEN,
    DEFAULT_TTL, PROVIDER_ID,
};

use crate::{Error, Result};

/// Environment variable naming the default branch key store directory.
pub const STORE_ENV: &str = "HYOK_BRANCH_STORE";

/// Where a branch key store is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A local directory.
    Dir(PathBuf),
    /// A folder of an object store (the versions go under its `.hyok/branches/`), as given.
    Objects(String),
}

/// Read a configured value: `s3://…` is an object-store folder, `file:///DIR` and plain
/// paths are directories (plain relative paths are relative to `base`).
fn parse(p: &Path, base: Option<&Path>) -> Result<Location> {
    match p.to_str() {
        Some(s) if s.starts_with("s3://") => {
            hyok_store::StoreUrl::parse(s)?;
            Ok(Location::Objects(s.to_owned()))
        }
        Some(s) if s.starts_with("file://") => {
            let url = hyok_store::StoreUrl::parse(s)?;
            let dir = url
                .local_path()
                .ok_or_else(|| Error::Config(format!("{s}: not a local folder")))?;
            Ok(Location::Dir(dir))
        }
        Some(s) if s.contains("://") => Err(Error::Config(format!(
            "branch store {s:?}: use a directory, file:///DIR or s3://BUCKET/[PREFIX/]"
        ))),
        _ => Ok(Location::Dir(match base {
            Some(b) if p.is_relative() => b.join(p),
            _ => p.to_path_buf(),
        })),
    }
}

/// The branch key store: `explicit`, else the keyring's `branch_store` (a relative path is
/// relative to the configuration file), else `$HYOK_BRANCH_STORE`, else
/// `~/.local/share/hyok/branches`. Each may be a directory or an `s3://` folder.
pub fn store_location(
    explicit: Option<&Path>,
    configured: Option<&Path>,
    config_file: Option<&Path>,
) -> Result<Location> {
    if let Some(p) = explicit {
        return parse(p, None);
    }
    if let Some(p) = configured {
        return parse(p, config_file.and_then(Path::parent));
    }
    if let Some(p) = std::env::var_os(STORE_ENV).filter(|p| !p.is_empty()) {
        return parse(Path::new(&p), None);
    }
    crate::config::user_data_dir()
        .map(|d| Location::Dir(d.join("branches")))
        .ok_or_else(|| {
            Error::Config(format!(
                "no branch key store: set {STORE_ENV}, branch_store in the keyring, or HOME"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(p: &str) -> Location {
        Location::Dir(PathBuf::from(p))
    }

    #[test]
    fn store_location_order() {
        let e = Path::new("/e");
        let c = Path::new("rel/b");
        let f = Path::new("/etc/hyok/hyok.toml");
        assert_eq!(
            store_location(Some(e), Some(c), Some(f)).unwrap(),
            dir("/e")
        );
        assert_eq!(
            store_location(None, Some(c), Some(f)).unwrap(),
            dir("/etc/hyok/rel/b")
        );
        assert_eq!(
            store_location(None, Some(Path::new("/abs")), Some(f)).unwrap(),
            dir("/abs")
        );
    }

    #[test]
    fn urls_are_object_stores_or_directories() {
        let f = Path::new("/etc/hyok/hyok.toml");
        assert_eq!(
            store_location(None, Some(Path::new("s3://bank-archive/")), Some(f)).unwrap(),
            Location::Objects("s3://bank-archive/".into())
        );
        assert_eq!(
            store_location(Some(Path::new("file:///srv/branches")), None, None).unwrap(),
            dir("/srv/branches")
        );
        for bad in ["s3://", "s3://Bad_Bucket/", "gs://b/", "file://rel"] {
            assert!(
                store_location(Some(Path::new(bad)), None, Some(f)).is_err(),
                "{bad}"
            );
        }
    }
}
