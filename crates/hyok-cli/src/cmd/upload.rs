//! Uploads (`hyok cp FILE LOCATION`, `hyok cp -r DIR PREFIX`): encrypt local files into
//! objects, nothing partial ever visible.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};
use hyok::objects::Source;
use hyok::store::{Backend, Store};
use hyok::EncryptionContext;

use super::crypt::context;
use super::progress::{finish_many, progress, run_jobs, Counting, Done, Tally};
use super::storage::Env;
use super::transfer::settings;
use crate::args::CpArgs;
use crate::Usage;

fn file_times(meta: &std::fs::Metadata) -> Option<SystemTime> {
    meta.modified().ok()
}

pub(super) fn stale_uploads(env: &Env, store: &Store) {
    if store.backend() == Backend::S3 {
        match env.rt.block_on(store.abort_stale_uploads()) {
            Ok(0) => {}
            Ok(n) => {
                eprintln!("hyok: aborted {n} multipart upload(s) left by an earlier failed run")
            }
            Err(e) => eprintln!(
                "hyok: warning: could not abort multipart uploads left by an earlier run: {e}"
            ),
        }
    }
}

pub(super) fn upload_one(env: &Env, a: &CpArgs) -> Result<()> {
    let (mut url, opts) = env.session.resolve(&a.dst)?;
    let stdin = a.src == "-";
    if url.is_folder() {
        let name = Path::new(&a.src)
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|_| !stdin)
            .ok_or_else(|| {
                Usage::err(
                    format!("{url} is a folder; name the object to write stdin to"),
                    None,
                )
            })?;
        url = url.join(name).map_err(hyok::Error::from)?;
    }
    let store = env.session.open_store(&url, opts)?;
    env.session.permit(&store, &url)?;
    let (reader, source): (Box<dyn Read + Send>, Source) = if stdin {
        (Box::new(io::stdin()), Source::default())
    } else {
        let path = PathBuf::from(&a.src);
        if path.is_dir() {
            return Err(Usage::err(
                format!("{} is a folder", path.display()),
                Some("pass -r to copy a folder"),
            ));
        }
        let f = File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        let meta = f.metadata()?;
        (
            Box::new(f),
            Source {
                len: meta.is_file().then_some(meta.len()),
                mtime: meta.is_file().then(|| file_times(&meta)).flatten(),
                context: EncryptionContext::new(),
            },
        )
    };
    let source = Source {
        context: context(&a.keys.context)?,
        ..source
    };
    let transfer = env.session.transfer(a.concurrency, a.part_size);
    let objects = env
        .objects(store.clone(), settings(a), transfer)?
        .bind_location(env.session.bind_location(a.no_bind_location));
    stale_uploads(env, &store);
    if let (false, Some(len), Some(mtime)) = (a.force, source.len, source.mtime) {
        if objects.holds_copy_of(&url, len, mtime)? {
            eprintln!(
                "hyok: {url} is already a complete copy of {} (skipped; --force copies anyway)",
                a.src
            );
            return Ok(());
        }
    }
    let pb = source
        .len
        .filter(|n| *n >= 64 * 1024 * 1024)
        .and_then(|n| progress(a.quiet, n, 1));
    let mut r = Counting {
        inner: reader,
        pb: pb.clone(),
    };
    let res = objects.put(&url, &mut r, &source);
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    res?;
    Ok(())
}

/// A local file found by `walk`: path, store key, size, modification time.
type WalkEntry = (PathBuf, String, u64, Option<SystemTime>);

/// Files under `root` (following no symbolic links to folders), with `/`-separated paths
/// relative to it, sorted; and the files whose names are not UTF-8 (no object key can
/// hold them), each as a failure of its own.
#[allow(clippy::type_complexity)]
fn walk(root: &Path) -> Result<(Vec<WalkEntry>, Vec<(String, Result<Done>)>)> {
    let mut out = Vec::new();
    let mut unnamed = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let rd =
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?;
        for ent in rd {
            let ent = ent.with_context(|| format!("cannot read {}", dir.display()))?;
            let path = ent.path();
            let ft = ent.file_type()?;
            if ft.is_dir() {
                stack.push(path);
            } else {
                let meta = std::fs::metadata(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                if !meta.is_file() {
                    continue;
                }
                let Some(rel) = path.strip_prefix(root).ok().and_then(|p| p.to_str()) else {
                    let shown = hyok::text::escape_bytes(path.as_os_str().as_encoded_bytes());
                    unnamed.push((
                        shown,
                        Err(hyok::Error::io(
                            "the file name is not UTF-8",
                            io::Error::new(io::ErrorKind::InvalidData, "no object key can hold it"),
                        )
                        .into()),
                    ));
                    continue;
                };
                let rel = rel.replace(std::path::MAIN_SEPARATOR, "/");
                out.push((path, rel, meta.len(), file_times(&meta)));
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok((out, unnamed))
}

pub(super) fn upload_tree(env: &Env, a: &CpArgs) -> Result<()> {
    let root = PathBuf::from(&a.src);
    if !root.is_dir() {
        return Err(Usage::err(
            format!("{} is not a folder", root.display()),
            Some("-r copies the contents of a folder"),
        ));
    }
    let (dst, opts) = env.session.resolve(&a.dst)?;
    let dst = dst.as_folder();
    let store = env.session.open_store(&dst, opts)?;
    let (files, unnamed) = walk(&root)?;
    // The residency guard sees every destination before the first request.
    env.session.permit(&store, &dst)?;
    let mut items = Vec::with_capacity(files.len());
    for (path, rel, len, mtime) in files {
        let url = dst.join(&rel).map_err(hyok::Error::from)?;
        env.session.permit(&store, &url)?;
        items.push((path, url, len, mtime));
    }
    let transfer = env.session.transfer(a.concurrency, a.part_size);
    let ctx = context(&a.keys.context)?;
    let objects = env
        .objects(store.clone(), settings(a), transfer)?
        .bind_location(env.session.bind_location(a.no_bind_location));
    stale_uploads(env, &store);
    let total_bytes: u64 = items.iter().map(|i| i.2).sum();
    let tally = Tally::new(progress(a.quiet, total_bytes, items.len()), items.len());
    let jobs = env.session.jobs(a.jobs);
    let force = a.force;
    let mut results = run_jobs(
        env,
        items,
        jobs,
        |(path, ..)| path.display().to_string(),
        move |(path, url, len, mtime), tally| {
            if let (false, Some(t)) = (force, mtime) {
                if objects.holds_copy_of(&url, len, t)? {
                    tally.object_done(len);
                    return Ok(Done::Skipped);
                }
            }
            let f = File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
            // The bar counts the bytes as they are read.
            let mut r = Counting {
                inner: f,
                pb: tally.pb.clone(),
            };
            let src = Source {
                len: Some(len),
                mtime,
                context: ctx.clone(),
            };
            let rep = objects.put(&url, &mut r, &src)?;
            tally.object_done(0);
            Ok(Done::Copied(rep.plaintext_len))
        },
        &tally,
    );
    // Files whose names no object key can hold fail alone, reported with the others.
    results.extend(unnamed);
    finish_many(tally.pb, results, "uploaded")
}
