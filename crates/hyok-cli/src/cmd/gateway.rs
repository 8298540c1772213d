//! `hyok gateway`: the S3 endpoint of crate `hyok-gateway`, on a session of the
//! configuration (its `[gateway]` section; each credential names its keyring, whose
//! `[keyrings.NAME.cache]` applies).

use std::path::Path;

use anyhow::Result;
use hyok::{CacheChoice, KeySource, Session, SessionConfig};

use crate::args::GatewayArgs;

pub(crate) fn run(config: Option<&Path>, a: GatewayArgs) -> Result<()> {
    let c = SessionConfig::load(config)?
        .keys(KeySource::Default)
        .cache(CacheChoice::Keyring);
    let session = Session::open(c)?;
    Ok(hyok_gateway::run(session, a.listen.as_deref())?)
}
