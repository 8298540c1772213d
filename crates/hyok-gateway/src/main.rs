//! `hyok-gateway`, the program `hyok gateway` runs: the S3 endpoint of the configuration's
//! `[gateway]` section on a session of that configuration (each credential names its
//! keyring, whose `[keyrings.NAME.cache]` applies), until SIGINT or SIGTERM.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use hyok::frontend;
use hyok::{CacheChoice, KeySource, Session, SessionConfig};

const ABOUT: &str = "Serve S3 on the configuration's [gateway] section: objects are \
    encrypted under its keyrings before they reach the backend.";

fn main() -> ExitCode {
    frontend::server_main("hyok-gateway", ABOUT, |a| {
        let c = SessionConfig::load(a.config.as_deref())?
            .keys(KeySource::Default)
            .cache(CacheChoice::Keyring);
        hyok_gateway::run(Session::open(c)?, a.listen.as_deref())
    })
}
