//! Downloads (`hyok cp LOCATION FILE`, `hyok cp -r PREFIX DIR`): decrypt objects into
//! local files that appear only complete and verified.

use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use hyok::objects::{self, ObjectSummary};

use super::crypt::context;
use super::progress::{finish_many, progress, run_jobs, CountingW, Done, Tally};
use super::storage::{list_all, Env};
use super::transfer::settings;
use crate::args::CpArgs;
use crate::io::{Content, Output};
use crate::Usage;

fn local_target(dst: &str, name: Option<&str>) -> Result<PathBuf> {
    let p = PathBuf::from(dst);
    if dst.ends_with('/') || p.is_dir() {
        let name = name.ok_or_else(|| Usage::err("the source names no object", None))?;
        Ok(p.join(name))
    } else {
        Ok(p)
    }
}

/// Whether a local file already holds the plaintext of the object.
fn local_is_copy(path: &Path, s: &ObjectSummary) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    let want_time = s.source_mtime.unwrap_or(s.last_modified);
    meta.is_file()
        && Some(meta.len()) == s.plaintext_len
        && meta
            .modified()
            .is_ok_and(|t| objects::same_time(t, want_time))
}

pub(super) fn download_one(env: &Env, a: &CpArgs) -> Result<()> {
    let (url, store) = env.open_location(&a.src)?;
    if url.is_folder() {
        return Err(Usage::err(
            format!("{url} is a prefix, not an object"),
            Some("pass -r to copy everything under it"),
        ));
    }
    let transfer = env.session.transfer(a.concurrency, a.part_size);
    let objects = env
        .objects(store, settings(a), transfer)?
        .bind_location(env.session.bind_location(a.no_bind_location));
    let reproduced = context(&a.keys.context)?;
    let to_stdout = a.dst == "-";
    let target = (!to_stdout)
        .then(|| local_target(&a.dst, url.file_name()))
        .transpose()?;
    if let (Some(t), false, None) = (&target, a.force, a.range) {
        if t.exists() {
            if let Some(s) = objects.describe_url(&url)? {
                if local_is_copy(t, &s) {
                    eprintln!("hyok: {} is already a complete copy of {url} (skipped; --force copies anyway)", t.display());
                    return Ok(());
                }
            }
        }
    }
    let mut out = Output::open(
        &target,
        &None,
        a.force,
        Content::Plaintext(a.release.release()),
    )?;
    let gate = out.gate();
    // A bar for big whole-object downloads (one HEAD more, only on a terminal).
    let pb = if a.quiet || a.range.is_some() || !io::stderr().is_terminal() {
        None
    } else {
        objects
            .describe_url(&url)?
            .and_then(|s| s.plaintext_len)
            .filter(|n| *n >= 64 * 1024 * 1024)
            .and_then(|n| progress(false, n, 1))
    };
    let res = {
        let mut w = CountingW {
            inner: out.writer(),
            pb: pb.clone(),
        };
        objects.get_inspecting(&url, &mut w, a.range, &reproduced, &mut |h| {
            if let Some(g) = &gate {
                g.set_signed(h.suite.signature().is_some());
            }
        })
    };
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    let report = res.map_err(|e| out.explain(e.into()))?;
    out.commit(a.fsync)?;
    if let (Some(t), None) = (&target, a.range) {
        objects::set_mtime(t, report.mtime)?;
    }
    Ok(())
}

pub(super) fn download_tree(env: &Env, a: &CpArgs) -> Result<()> {
    let (src, opts) = env.session.resolve(&a.src)?;
    let src = src.as_folder();
    let store = env.session.open_store(&src, opts)?;
    let (listed, unlisted) = list_all(env, &store, &src);
    let root = PathBuf::from(&a.dst);
    let transfer = env.session.transfer(a.concurrency, a.part_size);
    let objects = env
        .objects(store, settings(a), transfer)?
        .bind_location(env.session.bind_location(a.no_bind_location));
    let reproduced = context(&a.keys.context)?;
    let mut items = Vec::new();
    // An object whose name cannot be a file under the target fails alone.
    let mut refused = Vec::new();
    for info in listed {
        let rel = info.url.key()[src.key().len()..].to_owned();
        match objects::local_target(&root, &rel) {
            Ok(target) => items.push((info, rel, target)),
            Err(e) => refused.push((info.url.to_string(), Err(anyhow::Error::from(e)))),
        }
    }
    // Plaintext sizes are only known per object; the bar counts stored bytes as an estimate.
    let total: u64 = items.iter().map(|i| i.0.size).sum();
    let tally = Tally::new(progress(a.quiet, total, items.len()), items.len());
    let jobs = env.session.jobs(a.jobs);
    let (force, fsync, release) = (a.force, a.fsync, a.release.release());
    let mut results = run_jobs(
        env,
        items,
        jobs,
        |(info, ..)| info.url.to_string(),
        move |(info, _rel, target), tally| {
            if let Some(dir) = target.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            if !force && target.exists() {
                if let Some(s) = objects.describe_url(&info.url)? {
                    if local_is_copy(&target, &s) {
                        tally.object_done(info.size);
                        return Ok(Done::Skipped);
                    }
                }
            }
            let mut out = Output::open(
                &Some(target.clone()),
                &None,
                force,
                Content::Plaintext(release),
            )?;
            let gate = out.gate();
            let rep = objects
                .get_inspecting(&info.url, out.writer(), None, &reproduced, &mut |h| {
                    if let Some(g) = &gate {
                        g.set_signed(h.suite.signature().is_some());
                    }
                })
                .map_err(|e| out.explain(e.into()))?;
            out.commit(fsync)?;
            objects::set_mtime(&target, rep.mtime)?;
            tally.object_done(info.size);
            Ok(Done::Copied(rep.plaintext_len))
        },
        &tally,
    );
    // Objects the listing could not name fail alone, reported with the others.
    results.extend(refused);
    results.extend(
        unlisted
            .into_iter()
            .map(|e| (src.to_string(), Err(anyhow::Error::from(e)))),
    );
    finish_many(tally.pb, results, "downloaded")
}
