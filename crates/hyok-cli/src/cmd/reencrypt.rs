//! `hyok reencrypt LOCATION --to-key URI… | --to-keyring NAME`: bulk re-encryption through
//! [`hyok::reencrypt`]. Each object is examined (a ranged GET of its header), and unless it
//! already is on the target, streamed into a new message that replaces it only if it is
//! unchanged. A summary goes to stderr and into the audit log.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Result;
use hyok::audit::AdminOp;
use hyok::branch::VersionId;
use hyok::reencrypt::{
    examine, reencrypt_one, shard_of, Inventory, ObjectState, Outcome, Pacer, Selection, Target,
};
use hyok::store::ObjectInfo;
use hyok::text::escape_str;
use hyok::{AlgorithmSuite, CommitmentPolicy, EncryptOptions, KeySource, Settings};

use super::crypt::context;
use super::progress::{progress, Tally};
use super::storage::{list_all, report_unlisted, Env};
use crate::args::{ReencryptArgs, SuiteArg};
use crate::Usage;

/// What happened to one object.
enum Step {
    NotMessage,
    NotSelected,
    Current,
    Planned(u64),
    Reencrypted(u64),
    Changed,
}

#[derive(Default)]
struct Summary {
    not_message: usize,
    not_selected: usize,
    current: usize,
    planned: usize,
    planned_bytes: u64,
    reencrypted: usize,
    bytes: u64,
    changed: Vec<String>,
    failed: Vec<(String, anyhow::Error)>,
}

pub(crate) fn run(config: Option<&Path>, a: ReencryptArgs) -> Result<()> {
    if a.to_keys.is_empty() && a.to_keyring.is_none() {
        return Err(Usage::err(
            "reencrypt needs the keys to move to",
            Some("pass --to-key URI (repeat for several) or --to-keyring NAME"),
        ));
    }
    if a.rate
        .is_some_and(|r| r.is_nan() || r <= 0.0 || r.is_infinite())
    {
        return Err(Usage::err("--rate must be a positive number", None));
    }
    if a.key_rate
        .is_some_and(|r| r.is_nan() || r <= 0.0 || r.is_infinite() || r > 1e6)
    {
        return Err(Usage::err(
            "--key-rate must be a positive number of calls per second (at most 1000000)",
            None,
        ));
    }
    let mut env = Env::open(config, Some(&a.keys))?;
    if let Some(r) = a.key_rate {
        // One schedule for the old keys and the new ones (`with_keys` shares it).
        env.session = env.session.with_key_rate(r)?;
    }
    let started = Instant::now();
    let target_name = match &a.to_keyring {
        Some(k) => format!("keyring {k}"),
        None => a.to_keys.join(", "),
    };
    let result = run_inner(&env, &a);
    let detail = match &result {
        Ok(s) => Some(format!(
            "reencrypt {} to {target_name}{}: {} re-encrypted ({} bytes), {} already current, {} changed by another writer, {} failed",
            a.location,
            if a.dry_run { " (dry run)" } else { "" },
            s.reencrypted,
            s.bytes,
            s.current,
            s.changed.len(),
            s.failed.len()
        )),
        Err(_) => None,
    };
    let failed = result.as_ref().err().map(super::failure);
    env.session.record_key_admin(
        AdminOp::KeyRotate,
        &target_name,
        detail,
        started,
        failed.as_ref().map(|(c, t)| (*c, t.as_str())),
    );
    let summary = env.finish(result)?;
    report(&a, summary, started)
}

fn settings(a: &ReencryptArgs) -> Result<(Settings, Settings, Selection)> {
    let old = Settings {
        policy: if a.allow_legacy {
            CommitmentPolicy::RequireEncryptAllowDecrypt
        } else {
            CommitmentPolicy::RequireEncryptRequireDecrypt
        },
        ..Settings::default()
    };
    let new = Settings {
        suite: match a.suite {
            SuiteArg::Committed => AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
            SuiteArg::CommittedSigned => AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384,
        },
        encrypt: EncryptOptions {
            frame_length: a
                .frame_length
                .unwrap_or(EncryptOptions::default().frame_length),
            ..EncryptOptions::default()
        },
        ..Settings::default()
    };
    let mut sel = Selection {
        keys: a.only_keys.clone(),
        force: a.force,
        ..Selection::default()
    };
    for v in &a.only_versions {
        sel.versions.push(VersionId::parse(v).ok_or_else(|| {
            Usage::err(
                format!("--only-version {v:?} is not a branch key version id"),
                Some("`hyok branch show NAME` lists the versions"),
            )
        })?);
    }
    for s in &a.only_suites {
        let id = u16::from_str_radix(s.trim_start_matches("0x").trim_start_matches("0X"), 16)
            .ok()
            .and_then(|id| AlgorithmSuite::from_id(id).ok())
            .ok_or_else(|| {
                Usage::err(
                    format!("--only-suite {s:?} is not a known suite id"),
                    Some("suite ids look like 0x0478 (format 2) or 0x0178 (format 1)"),
                )
            })?;
        sel.suites.push(id);
    }
    Ok((old, new, sel))
}

fn run_inner(env: &Env, a: &ReencryptArgs) -> Result<Summary> {
    let (old_settings, new_settings, sel) = settings(a)?;
    let (url, store) = env.open_location(&a.location)?;
    env.session.permit(&store, &url)?;
    if !a.dry_run {
        // Multipart uploads a killed run left (its journal names them) are aborted, as
        // `cp` does, so repeated kills do not pile up parts on the server.
        super::upload::stale_uploads(env, &store);
    }
    let bind = env.session.bind_location(a.no_bind_location);
    // Reads and writes get their own transfer limits: ranged GETs hold their permits until
    // the decryptor consumes them, and the decryptor waits for the upload, so one shared
    // pool can fill with reads and starve the uploads (a deadlock with several large objects).
    let old = env
        .objects(
            store.clone(),
            old_settings,
            env.session.transfer(None, None),
        )?
        .bind_location(bind);
    let transfer = env.session.transfer(None, None);
    let to = env.session.with_keys(match &a.to_keyring {
        Some(k) => KeySource::Keyring(k.clone()),
        None => KeySource::Uris(a.to_keys.clone()),
    });
    let new = to.objects(
        store.clone(),
        new_settings,
        transfer,
        env.rt.handle().clone(),
    )?;
    let reproduced = context(&a.keys.context)?;
    let target = env
        .rt
        .block_on(Target::probe(new.client(), a.frame_length))?;

    // The objects: one object, or everything under a prefix; then this worker's shard.
    let single = if url.is_folder() {
        None
    } else {
        env.rt.block_on(store.try_head(&url))?
    };
    let (mut infos, failed) = match single {
        Some(i) => (vec![i], Vec::new()),
        None => list_all(env, &store, &url),
    };
    report_unlisted(&failed);
    if let Some((i, n)) = a.shard {
        infos.retain(|o| shard_of(o.url.key(), n) == i);
    }
    let total_bytes = infos.iter().map(|o| o.size).sum();
    let pb = progress(a.quiet || a.dry_run, total_bytes, infos.len());
    let tally = Tally::new(pb.clone(), infos.len());
    let pacer = a.rate.map(Pacer::new);
    let jobs = env.session.jobs(a.jobs).min(infos.len().max(1));
    let next = AtomicUsize::new(0);
    let summary = Mutex::new(Summary::default());
    let inventory = Mutex::new(Inventory::default());
    let one = |info: &ObjectInfo| -> Result<Step> {
        let Some(state) = examine_or_changed(old.catalog(), info, &target)? else {
            return Ok(Step::NotMessage);
        };
        let state = match state {
            Examined::Changed => return Ok(Step::Changed),
            Examined::State(s) => *s,
        };
        inventory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add(&state);
        if !sel.matches(&state) {
            return Ok(Step::NotSelected);
        }
        if !sel.wants(&state) {
            return Ok(Step::Current);
        }
        if a.dry_run {
            return Ok(Step::Planned(state.info.size));
        }
        if let Some(p) = &pacer {
            p.wait();
        }
        match reencrypt_one(&old, &new, &state, &reproduced, bind)? {
            Outcome::Reencrypted { plaintext_len, .. } => Ok(Step::Reencrypted(plaintext_len)),
            Outcome::Changed => Ok(Step::Changed),
        }
    };
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(info) = infos.get(i) else { break };
                let step = one(info);
                tally.object_done(info.size);
                let mut sum = summary.lock().unwrap_or_else(|p| p.into_inner());
                let shown = info.url.to_string();
                match step {
                    Ok(Step::NotMessage) => sum.not_message += 1,
                    Ok(Step::NotSelected) => sum.not_selected += 1,
                    Ok(Step::Current) => sum.current += 1,
                    Ok(Step::Planned(n)) => {
                        sum.planned += 1;
                        sum.planned_bytes += n;
                    }
                    Ok(Step::Reencrypted(n)) => {
                        sum.reencrypted += 1;
                        sum.bytes += n;
                    }
                    Ok(Step::Changed) => sum.changed.push(shown),
                    Err(e) => sum.failed.push((shown, e)),
                }
            });
        }
    });
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    let mut summary = summary.into_inner().unwrap_or_else(|p| p.into_inner());
    for e in failed {
        summary.failed.push((url.to_string(), e.into()));
    }
    if a.dry_run {
        print_inventory(&inventory.into_inner().unwrap_or_else(|p| p.into_inner()));
    }
    Ok(summary)
}

enum Examined {
    State(Box<ObjectState>),
    Changed,
}

/// Examine one object; one that changed or vanished since it was listed is `Changed`.
fn examine_or_changed(
    catalog: &hyok::objects::Catalog,
    info: &ObjectInfo,
    target: &Target,
) -> Result<Option<Examined>> {
    match examine(catalog, info.clone(), target) {
        Ok(Some(s)) => Ok(Some(Examined::State(Box::new(s)))),
        Ok(None) => Ok(None),
        Err(hyok::Error::Store(e))
            if e.is_not_found() || matches!(e, hyok::store::Error::Changed(_)) =>
        {
            Ok(Some(Examined::Changed))
        }
        Err(e) => Err(e.into()),
    }
}

fn print_inventory(inv: &Inventory) {
    println!("objects\tbytes\ton-target\tsuite\twrapping-keys\tbranch-versions");
    for ((labels, versions, suite), c) in &inv.groups {
        println!(
            "{}\t{}\t{}\t0x{suite:04X}\t{}\t{}",
            c.objects,
            c.bytes,
            c.current,
            escape_str(&labels.join(",")),
            if versions.is_empty() {
                "-".to_owned()
            } else {
                versions.join(",")
            }
        );
    }
}

fn report(a: &ReencryptArgs, s: Summary, started: Instant) -> Result<()> {
    let secs = started.elapsed().as_secs_f64().max(1e-3);
    if a.dry_run {
        eprintln!(
            "hyok: dry run: would re-encrypt {} object(s) ({} bytes stored); {} already on the target, {} not selected, {} not hyok messages",
            s.planned, s.planned_bytes, s.current, s.not_selected, s.not_message
        );
    } else {
        eprintln!(
            "hyok: re-encrypted {} object(s), {} plaintext bytes in {:.1} s ({:.1} objects/s, {:.1} MiB/s); {} already on the target, {} not selected, {} not hyok messages",
            s.reencrypted,
            s.bytes,
            secs,
            s.reencrypted as f64 / secs,
            s.bytes as f64 / secs / 1048576.0,
            s.current,
            s.not_selected,
            s.not_message
        );
    }
    if !s.changed.is_empty() {
        eprintln!(
            "hyok: {} object(s) changed by another writer while this ran and were left alone (run again to examine them anew):",
            s.changed.len()
        );
        for c in s.changed.iter().take(20) {
            eprintln!("  {}", escape_str(c));
        }
    }
    let total = s.failed.len();
    let mut failed = s.failed.into_iter();
    let Some((name, first)) = failed.next() else {
        return Ok(());
    };
    for (n, e) in failed.by_ref().take(19) {
        eprintln!(
            "hyok: failed: {}: {}",
            escape_str(&n),
            format!("{e:#}").replace('\n', " ")
        );
    }
    if total > 20 {
        eprintln!("hyok: … and {} more failures", total - 20);
    }
    Err(first.context(format!(
        "{total} object(s) failed; {} (a re-run retries them)",
        escape_str(&name)
    )))
}
