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
    let tmp = config_path.with_extension("toml.tmp");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, &config_path))
        .with_context(|| format!("writing {}", config_path.display()))?;
    println!("config: {}", config_path.display());
    println!("key:    {} ({key_note})", key_file.display());
    println!("store:  {} (stores only ciphertext)", store_dir.display());
    println!();
    println!("try:    hyok cp FILE :FILE     # encrypt into the default store");
    println!("        hyok ls :              # list it");
    println!("        hyok cp :FILE COPY     # decrypt it again");
    Ok(())
}
