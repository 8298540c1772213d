//! `hyok xks`: the AWS KMS External Key Store proxy, started from the session (its
//! configuration's `[xks]` section, its audit log) and served until Ctrl-C or SIGTERM.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::args::XksArgs;

pub(crate) fn run(config: Option<&Path>, args: XksArgs) -> Result<()> {
    let session = super::session(config, None)?;
    let rt = super::runtime()?;
    let result = rt.block_on(async {
        let bound = hyok_xks::start(&session, args.listen.as_deref()).await?;
        let mut prefixes = Vec::new();
        for s in bound.proxy.stores() {
            prefixes.push(format!("{} ({} keys)", s.base, s.keys.len()));
        }
        // A closed stderr must not stop the server (eprintln! would panic).
        let _ = writeln!(
            std::io::stderr(),
            "hyok xks: listening on {} for {}",
            bound.url(),
            prefixes.join(", ")
        );
        let proxy = bound.proxy.clone();
        let config_path = config.map(Path::to_path_buf);
        let reloads = tokio::spawn(reload_on_hangup(proxy, config_path));
        bound.serve(shutdown()).await;
        reloads.abort();
        let _ = writeln!(std::io::stderr(), "hyok xks: stopped");
        anyhow::Ok(())
    });
    super::finish(session, result)
}

/// On SIGHUP, read the configuration again and take its SigV4 credentials (a credential
/// rotation without stopping); anything else in it needs a restart.
async fn reload_on_hangup(proxy: std::sync::Arc<hyok_xks::Proxy>, config: Option<PathBuf>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            let line = match hyok::SessionConfig::load(config.as_deref())
                .and_then(|c| hyok_xks::config_of(&c.file.config, c.file.path.as_deref(), None))
            {
                Ok(c) => format!(
                    "hyok xks: SIGHUP: credentials reloaded for {}",
                    proxy.reload_credentials(&c).join(", ")
                ),
                Err(e) => format!("hyok xks: SIGHUP: configuration not reloaded: {e}"),
            };
            let _ = writeln!(std::io::stderr(), "{line}");
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (proxy, config);
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
