//! The proxy as a process: a session of the configuration file, the `[xks]` section served
//! until Ctrl-C or SIGTERM, SIGHUP reloading the SigV4 credentials, the audit log closed
//! with an exit checkpoint.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyok::{CacheChoice, KeySource, Session, SessionConfig};

use crate::Proxy;

/// Run the proxy of the configuration at `config` (else `$HYOK_CONFIG`, else the default
/// path) until SIGINT or SIGTERM (blocking). Prints the address it listens on to stderr.
pub fn run(config: Option<&Path>, listen: Option<&str>) -> hyok::Result<()> {
    let c = SessionConfig::load(config)?
        .keys(KeySource::Default)
        .cache(CacheChoice::Off);
    let session = Session::open(c)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| hyok::Error::io("starting the runtime", e))?;
    let served = rt.block_on(async {
        let bound = crate::start(&session, listen).await?;
        let prefixes: Vec<String> = bound
            .proxy
            .stores()
            .iter()
            .map(|s| format!("{} ({} keys)", s.base, s.keys.len()))
            .collect();
        // A closed stderr must not stop the server (eprintln! would panic).
        let _ = writeln!(
            std::io::stderr(),
            "hyok xks: listening on {} for {}",
            bound.url(),
            prefixes.join(", ")
        );
        let reloads = tokio::spawn(reload_on_hangup(
            bound.proxy.clone(),
            config.map(Path::to_path_buf),
        ));
        bound.serve(hyok::frontend::shutdown_signal()).await;
        reloads.abort();
        let _ = writeln!(std::io::stderr(), "hyok xks: stopped");
        hyok::Result::Ok(())
    });
    match (served, session.close()) {
        (Err(e), _) | (Ok(()), Err(e)) => Err(e),
        (Ok(()), Ok(())) => Ok(()),
    }
}

/// On SIGHUP, read the configuration again and take its SigV4 credentials (a credential
/// rotation without stopping); anything else in it needs a restart.
async fn reload_on_hangup(proxy: Arc<Proxy>, config: Option<PathBuf>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        let line = match SessionConfig::load(config.as_deref())
            .and_then(|c| crate::config_of(&c.file.config, c.file.path.as_deref(), None))
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
