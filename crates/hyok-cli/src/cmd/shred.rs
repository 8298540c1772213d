//! Crypto-shredding with proof (`hyok key destroy --check`, `hyok branch destroy --check`):
//! before destroying a key or branch key version, find the objects under a location that
//! only it opens; after, try each of them and show that none decrypts any more.

use std::time::Instant;

use anyhow::Result;
use hyok::store::ObjectInfo;
use hyok::text::escape_str;
use hyok::{Client, EncryptionContext, Header, OpLabel};

use super::storage::{list_all, report_unlisted, Env};

/// The objects under a location that would become unreadable.
pub(super) struct Doomed {
    pub(super) objects: Vec<ObjectInfo>,
    pub(super) examined: usize,
    pub(super) unlisted: usize,
}

/// Every object under `location` whose header `only` says is opened by nothing but the key
/// being destroyed.
pub(super) fn find(env: &Env, location: &str, only: &dyn Fn(&Header) -> bool) -> Result<Doomed> {
    let (url, store) = env.open_location(location)?;
    env.session.permit(&store, &url)?;
    let (infos, failed) = list_all(env, &store, &url);
    report_unlisted(&failed);
    let catalog = env.session.catalog(store, env.rt.handle().clone());
    let mut objects = Vec::new();
    let examined = infos.len();
    for info in infos {
        if info.size == 0 {
            continue;
        }
        match catalog.read_header(&info) {
            Ok(p) if only(&p.header) => objects.push(info),
            Ok(_) => {}
            Err(hyok::Error::Format(_)) => {} // not an ESDK message
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Doomed {
        objects,
        examined,
        unlisted: failed.len(),
    })
}

/// Print what the check found; refuse unless `yes` when anything would become unreadable.
pub(super) fn confirm(what: &str, location: &str, d: &Doomed, yes: bool) -> Result<()> {
    eprintln!(
        "{} object(s) under {} examined; {} opened only by {what}",
        d.examined,
        escape_str(location),
        d.objects.len()
    );
    for o in d.objects.iter().take(20) {
        println!("{}", escape_str(&o.url.to_string()));
    }
    if d.objects.len() > 20 {
        eprintln!("… and {} more", d.objects.len() - 20);
    }
    if d.unlisted > 0 {
        return Err(anyhow::anyhow!(
            "{} entries under {} could not be listed; not destroying {what} without a complete check",
            d.unlisted,
            escape_str(location)
        ));
    }
    if !d.objects.is_empty() && !yes {
        return Err(crate::Usage::err(
            format!(
                "destroying {what} would make {} object(s) unreadable forever",
                d.objects.len()
            ),
            Some("re-encrypt them first (`hyok reencrypt`), or pass --yes to shred them"),
        ));
    }
    Ok(())
}

/// After destruction: try to open each doomed object with `client` (header and key step).
/// Returns how many still open (should be none).
pub(super) fn verify_gone(env: &Env, location: &str, d: &Doomed, client: &Client) -> Result<usize> {
    let (_, store) = env.open_location(location)?;
    let catalog = env.session.catalog(store, env.rt.handle().clone());
    let started = Instant::now();
    let mut still = 0;
    for info in &d.objects {
        let parsed = catalog.read_header(info)?;
        let label = OpLabel {
            subject: Some(format!("{} (shredding check)", info.url)),
            ..Default::default()
        };
        let opened = env
            .rt
            .block_on(client.open(parsed, &EncryptionContext::new(), &label));
        if opened.is_ok() {
            still += 1;
            eprintln!(
                "hyok: error: {} still decrypts",
                escape_str(&info.url.to_string())
            );
        }
    }
    eprintln!(
        "checked: {} of {} object(s) no longer decrypt ({:.1} s)",
        d.objects.len() - still,
        d.objects.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(still)
}
