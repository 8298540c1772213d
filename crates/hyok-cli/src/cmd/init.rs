//! `hyok init`: a starter configuration with a local AES-256 key and a local folder store.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use hyok::config::{config_location, user_data_dir, Config};
use zeroize::Zeroizing;

use crate::args::InitArgs;
use crate::io::create_new;
use crate::Usage;

fn private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict {}", dir.display()))?;
    }
    Ok(())
}

/// Write `path` (mode 0600) through a new temporary file beside it with a name nobody can
/// predict, created exclusively (`O_EXCL`: never through a planted file or link), then
/// renamed over `path`. The temporary file is removed on failure.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut suffix = [0u8; 8];
    aws_lc_rs::rand::fill(&mut suffix)
        .map_err(|_| anyhow::anyhow!("random number generator failed"))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "hyok.toml".into());
    let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = path.with_file_name(format!(".{name}.{suffix}.tmp"));
    let mut f = create_new(&tmp, 0o600)?;
    let written = f
        .write_all(bytes)
        .and_then(|_| f.sync_all())
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(anyhow::Error::new(e).context(format!("writing {}", path.display())));
    }
    Ok(())
}

pub(crate) fn run(explicit: Option<&Path>, a: InitArgs) -> Result<()> {
    let (config_path, _) = config_location(explicit).ok_or_else(|| {
        Usage::err(
            "no home directory to put the configuration in",
            Some("pass --config PATH or set HYOK_CONFIG"),
        )
    })?;
    if config_path.exists() && !a.force {
        return Err(Usage::err(
            format!("{} already exists", config_path.display()),
            Some("pass --force to replace it (key files are never replaced)"),
        ));
    }
    let data = user_data_dir().ok_or_else(|| {
        Usage::err(
            "no home directory for the key and the store",
            Some("set HOME or XDG_DATA_HOME"),
        )
    })?;
    let key_dir = data.join("keys");
    let key_file = key_dir.join("default.key");
    let store_dir = data.join("store");
    private_dir(&key_dir)?;
    let key_note = if key_file.exists() {
        "kept the existing key"
    } else {
        let mut key = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(&mut key[..])
            .map_err(|_| anyhow::anyhow!("random number generator failed"))?;
        let mut f = create_new(&key_file, 0o600)?;
        f.write_all(&key[..])
            .and_then(|_| f.sync_all())
            .with_context(|| format!("writing {}", key_file.display()))?;
        "created a new AES-256 key (mode 0600)"
    };
    std::fs::create_dir_all(&store_dir)
        .with_context(|| format!("cannot create {}", store_dir.display()))?;
    let text = Config::starter(&key_file, &store_dir)?;
    Config::parse(&text).context("the starter configuration does not parse")?;
    if let Some(dir) = config_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    write_private(&config_path, text.as_bytes())?;
    println!("config: {}", config_path.display());
    println!("key:    {} ({key_note})", key_file.display());
    println!("store:  {} (stores only ciphertext)", store_dir.display());
    println!();
    println!("try:    hyok cp FILE :FILE     # encrypt into the default store");
    println!("        hyok ls :              # list it");
    println!("        hyok cp :FILE COPY     # decrypt it again");
    Ok(())
}
