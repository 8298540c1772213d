//! `hyok branch new|rotate|list|show|rewrap|destroy`: branch keys, a key hierarchy under the
//! master keys (docs/ROTATION.md). Every step that changes the store leaves an audit record,
//! failures included.

use std::path::Path;
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::Result;
use hyok::audit::AdminOp;
use hyok::branch::{edk_version, BranchStore, VersionId, VersionRecord, PROVIDER_ID};
use hyok::objects::edk_label;
use hyok::text::escape_str;
use hyok::{CacheChoice, KeySource, Session, SessionConfig, Settings};

use crate::args::{
    BranchDestroyArgs, BranchKeysArgs, BranchListArgs, BranchNameArgs, BranchRewrapArgs,
};
use crate::Usage;

fn open(config: Option<&Path>, keys: KeySource) -> Result<Session> {
    let c = SessionConfig::load(config)?
        .keys(keys)
        .cache(CacheChoice::Off);
    Ok(Session::open(c)?)
}

fn keyring_source(keyring: &Option<String>) -> KeySource {
    keyring
        .clone()
        .map_or(KeySource::Default, KeySource::Keyring)
}

fn wrapped_by(rec: &VersionRecord) -> String {
    rec.edks
        .iter()
        .map(|e| escape_str(&edk_label(e)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn time(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

pub(crate) fn new(config: Option<&Path>, a: BranchKeysArgs) -> Result<()> {
    add_version(config, a, true)
}

pub(crate) fn rotate(config: Option<&Path>, a: BranchKeysArgs) -> Result<()> {
    add_version(config, a, false)
}

fn add_version(config: Option<&Path>, a: BranchKeysArgs, create: bool) -> Result<()> {
    let session = open(config, a.select.source())?;
    let started = Instant::now();
    let result = (|| -> Result<(BranchStore, VersionRecord)> {
        let store = session.branch_store(a.store.branch_store.as_deref())?;
        let master = session.master_key_manager()?;
        let rt = super::runtime()?;
        let rec = if create {
            rt.block_on(store.create(&a.name, &master))
        } else {
            rt.block_on(store.rotate(&a.name, &master))
        }
        .map_err(hyok::Error::from)?;
        Ok((store, rec))
    })();
    let detail = result.as_ref().ok().map(|(_, r)| {
        format!(
            "version {} (#{}) wrapped by {}",
            r.version,
            r.seq,
            wrapped_by(r)
        )
    });
    let op = if create {
        AdminOp::KeyNew
    } else {
        AdminOp::KeyRotate
    };
    super::record_admin(
        &session,
        op,
        &format!("branch:{}", a.name),
        detail,
        started,
        &result,
    );
    let (store, rec) = super::finish(session, result)?;
    println!("{}", rec.version);
    eprintln!(
        "{} branch key {} version {} (#{}) in {}, wrapped by {}",
        if create { "created" } else { "rotated" },
        escape_str(&a.name),
        rec.version,
        rec.seq,
        escape_str(&store.location()),
        wrapped_by(&rec)
    );
    Ok(())
}

pub(crate) fn list(config: Option<&Path>, a: BranchListArgs) -> Result<()> {
    let session = open(config, keyring_source(&a.keyring))?;
    let result = (|| -> Result<()> {
        let store = session.branch_store(a.store.branch_store.as_deref())?;
        let rt = super::runtime()?;
        match &a.name {
            Some(name) => print_versions(&rt, &store, name),
            None => {
                let names = rt.block_on(store.names()).map_err(hyok::Error::from)?;
                if names.is_empty() {
                    eprintln!("no branch keys in {}", escape_str(&store.location()));
                }
                for n in names {
                    let versions = rt.block_on(store.versions(&n)).map_err(hyok::Error::from)?;
                    let active = versions.last().map(|v| v.version.to_string());
                    println!(
                        "{}\t{} version(s)\tactive {}",
                        n,
                        versions.len(),
                        active.unwrap_or_default()
                    );
                }
                Ok(())
            }
        }
    })();
    super::finish(session, result)
}

fn print_versions(rt: &tokio::runtime::Runtime, store: &BranchStore, name: &str) -> Result<()> {
    let versions = rt
        .block_on(store.versions(name))
        .map_err(hyok::Error::from)?;
    let last = versions.len().saturating_sub(1);
    for (i, v) in versions.iter().enumerate() {
        println!(
            "#{}\t{}\t{}\t{}\t{}",
            v.seq,
            v.version,
            time(v.created),
            if i == last { "active" } else { "-" },
            wrapped_by(v)
        );
    }
    Ok(())
}

pub(crate) fn show(config: Option<&Path>, a: BranchNameArgs) -> Result<()> {
    let session = open(config, keyring_source(&a.keyring))?;
    let result = (|| -> Result<()> {
        let store = session.branch_store(a.store.branch_store.as_deref())?;
        let rt = super::runtime()?;
        let versions = rt
            .block_on(store.versions(&a.name))
            .map_err(hyok::Error::from)?;
        let active = versions.last().map(|v| v.version.to_string());
        println!("branch key:  {}", a.name);
        println!("store:       {}", escape_str(&store.location()));
        println!("versions:    {}", versions.len());
        println!("active:      {}", active.unwrap_or_default());
        println!("provider id: {PROVIDER_ID}");
        print_versions(&rt, &store, &a.name)
    })();
    super::finish(session, result)
}

pub(crate) fn rewrap(config: Option<&Path>, a: BranchRewrapArgs) -> Result<()> {
    let session = open(config, a.select.source())?;
    let started = Instant::now();
    let result = (|| -> Result<usize> {
        let store = session.branch_store(a.store.branch_store.as_deref())?;
        let from = session.master_key_manager()?;
        let to = session
            .with_keys(KeySource::Uris(a.to_keys.clone()))
            .master_key_manager()?;
        let n = super::runtime()?
            .block_on(store.rewrap(&a.name, &from, &to))
            .map_err(hyok::Error::from)?;
        Ok(n)
    })();
    let detail = result
        .as_ref()
        .ok()
        .map(|n| format!("{n} version(s) re-wrapped to {}", a.to_keys.join(", ")));
    super::record_admin(
        &session,
        AdminOp::KeyRotate,
        &format!("branch:{}", a.name),
        detail,
        started,
        &result,
    );
    let n = super::finish(session, result)?;
    eprintln!(
        "re-wrapped {n} version(s) of branch key {} under the new master keys; no object was rewritten. The old master keys can now be destroyed.",
        escape_str(&a.name)
    );
    Ok(())
}

pub(crate) fn destroy(config: Option<&Path>, a: BranchDestroyArgs) -> Result<()> {
    let Some(version) = VersionId::parse(&a.version) else {
        return Err(Usage::err(
            format!("{:?} is not a branch key version id", a.version),
            Some("`hyok branch show NAME` lists the versions"),
        ));
    };
    if a.check.is_none() && !a.yes {
        return Err(Usage::err(
            format!(
                "destroying version {version} of branch key {} makes every object wrapped only under it unreadable forever",
                escape_str(&a.name)
            ),
            Some("pass --check LOCATION to see which objects, or --yes to confirm (crypto-shredding)"),
        ));
    }
    let env = super::storage::Env::from_session(open(config, keyring_source(&a.keyring))?)?;
    let started = Instant::now();
    let what = format!("branch:{}/{version}", a.name);
    let result = destroy_run(&env, &a, version, &what);
    super::record_admin(
        &env.session,
        AdminOp::KeyDestroy,
        &what,
        result.as_ref().ok().cloned(),
        started,
        &result,
    );
    let msg = env.finish(result)?;
    eprintln!("{}", escape_str(&msg));
    Ok(())
}

fn destroy_run(
    env: &super::storage::Env,
    a: &BranchDestroyArgs,
    version: VersionId,
    what: &str,
) -> Result<String> {
    let store = env.session.branch_store(a.store.branch_store.as_deref())?;
    // Refuse an unknown version before looking at any object.
    env.rt
        .block_on(store.version(&a.name, &version))
        .map_err(hyok::Error::from)?;
    let name = a.name.clone();
    let only = move |h: &hyok::Header| {
        !h.edks.is_empty()
            && h.edks.iter().all(|e| {
                e.provider_id == PROVIDER_ID
                    && e.provider_info == name.as_bytes()
                    && edk_version(e, h.suite.key_len()) == Some(version)
            })
    };
    let doomed = match &a.check {
        Some(loc) => {
            let d = super::shred::find(env, loc, &only)?;
            super::shred::confirm(what, loc, &d, a.yes)?;
            Some((loc, d))
        }
        None => None,
    };
    env.rt
        .block_on(store.destroy_version(&a.name, &version))
        .map_err(hyok::Error::from)?;
    let mut msg = format!("destroyed {what}");
    if let Some((loc, d)) = doomed {
        if env.session.branch_name()?.as_deref() != Some(a.name.as_str()) {
            msg.push_str(&format!(
                "; {} object(s) under {loc} needed only it (not tried afterwards: pass --keyring with branch = \"{}\" to check they no longer decrypt)",
                d.objects.len(),
                a.name
            ));
            return Ok(msg);
        }
        let client = env.session.client(Settings::default())?;
        let still = super::shred::verify_gone(env, loc, &d, &client)?;
        if still > 0 {
            return Err(anyhow::anyhow!(
                "{still} object(s) under {loc} still decrypt after destroying {what}"
            ));
        }
        msg.push_str(&format!(
            "; checked: all {} object(s) under {loc} that needed only it no longer decrypt",
            d.objects.len()
        ));
    }
    Ok(msg)
}
