//! `hyok xks`: the AWS KMS External Key Store proxy, started from the session (its
//! configuration's `[xks]` section, its audit log) and served until Ctrl-C or SIGTERM.

use std::io::Write as _;
use std::path::Path;

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
        bound.serve(shutdown()).await;
        let _ = writeln!(std::io::stderr(), "hyok xks: stopped");
        anyhow::Ok(())
    });
    super::finish(session, result)
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
