//! `hyok key destroy URI --check LOCATION`: crypto-shredding of a master key with proof
//! (see [`super::shred`]).

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use hyok::audit::AdminOp;
use hyok::objects::edk_label;
use hyok::text::escape_str;
use hyok::{CacheChoice, KeySource, Session, SessionConfig, Settings};

use super::storage::Env;
use crate::args::KeyDestroyArgs;

pub(super) fn destroy_checked(config: Option<&Path>, a: &KeyDestroyArgs, loc: &str) -> Result<()> {
    let session = Session::open(
        SessionConfig::load(config)?
            .keys(KeySource::Uris(vec![a.uri.clone()]))
            .cache(CacheChoice::Off),
    )?;
    let env = Env::from_session(session)?;
    let started = Instant::now();
    let result = run(&env, a, loc);
    let failed = result.as_ref().err().map(super::failure);
    env.session.record_key_admin(
        AdminOp::KeyDestroy,
        &a.uri,
        result.as_ref().ok().cloned(),
        started,
        failed.as_ref().map(|(c, t)| (*c, t.as_str())),
    );
    let msg = env.finish(result)?;
    eprintln!("{}", escape_str(&msg));
    Ok(())
}

fn run(env: &Env, a: &KeyDestroyArgs, loc: &str) -> Result<String> {
    let label = env.session.key_label(&a.uri)?;
    let only =
        |h: &hyok::Header| !h.edks.is_empty() && h.edks.iter().all(|e| edk_label(e) == label);
    let doomed = super::shred::find(env, loc, &only)?;
    super::shred::confirm(&a.uri, loc, &doomed, a.yes)?;
    let (admin, uri) = env.session.key_admin(&a.uri)?;
    let said = env
        .rt
        .block_on(admin.destroy(&uri))
        .map_err(hyok::Error::from)?;
    // A fresh session: nothing of the key before destruction is reused.
    let after = env.session.with_keys(KeySource::Uris(vec![a.uri.clone()]));
    let still = match after.client(Settings::default()) {
        Ok(client) => super::shred::verify_gone(env, loc, &doomed, &client)?,
        // The key no longer even opens: nothing it wrapped can.
        Err(_) => 0,
    };
    if still > 0 {
        return Err(anyhow::anyhow!(
            "{still} object(s) under {loc} still decrypt after destroying {}",
            a.uri
        ));
    }
    Ok(format!(
        "{said}; checked: {} object(s) under {loc} that only this key opened no longer decrypt",
        doomed.objects.len()
    ))
}
