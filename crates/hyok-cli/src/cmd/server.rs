//! `hyok gateway` and `hyok xks`. The servers are programs of their own (`hyok-gateway`,
//! `hyok-xks`), built on the facade like this CLI; these commands run the one asked for
//! with the flags parsed here, in this process's place (same process id, so signals reach
//! the server itself).

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;

use crate::Usage;

/// Replace this process with `program --config CONFIG --listen LISTEN`; returns only when
/// that could not be done.
pub(crate) fn exec(program: &str, config: Option<&Path>, listen: Option<&str>) -> Result<()> {
    let path = locate(program)?;
    let mut cmd = Command::new(&path);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    if let Some(l) = listen {
        cmd.arg("--listen").arg(l);
    }
    let e = cmd.exec();
    Err(anyhow::Error::new(e).context(format!("cannot run {}", path.display())))
}

/// The program next to this executable (an install and a cargo build put them side by
/// side), else the first on PATH.
fn locate(program: &str) -> Result<PathBuf> {
    let here = std::env::current_exe()
        .ok()
        .and_then(|me| me.parent().map(Path::to_path_buf));
    let path = std::env::var_os("PATH").unwrap_or_default();
    here.iter()
        .cloned()
        .chain(std::env::split_paths(&path))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Usage::err(
                format!("{program} is not installed (not next to hyok, not on PATH)"),
                Some(&format!(
                    "install it beside hyok: cargo install --locked --path crates/{program}"
                )),
            )
        })
}
