//! `hyok cp`, `hyok cat`, `hyok ls`, `hyok rm`: encrypted objects in a local folder or an
//! S3-compatible store.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use hyok::config::{Config, Loaded};
use hyok::objects::{self, ObjectSummary, Objects, Source};
use hyok::policy::Destination;
use hyok::store::{Backend, ObjectInfo, Store, StoreOptions, StoreUrl, Transfer};
use hyok::{AlgorithmSuite, Client, EncryptOptions, EncryptionContext, Settings};
use hyok_keystore::cache::{CacheLimits, MemoryCache};
use hyok_keystore::{KeyManager, Keyring};
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::{CatArgs, CpArgs, LsArgs, RmArgs, StoreKeyArgs, SuiteArg};
use crate::io::{Content, Output};
use crate::Usage;

/// Everything a storage command resolved before touching a store.
struct Env {
    cfg: Config,
    rt: tokio::runtime::Runtime,
    /// The audit log (HYOK_AUDIT_LOG or [audit]): every key use of every object, cache hits included.
    audit: super::audit::Session,
}

impl Env {
    fn new(loaded: Loaded) -> Result<Self> {
        let audit = super::audit::Session::open(loaded.audit_settings())?;
        Ok(Self {
            cfg: loaded.config,
            rt: super::runtime()?,
            audit,
        })
    }

    /// Close the audit log (exit checkpoint) and fold its outcome into the command's.
    fn finish(self, result: Result<()>) -> Result<()> {
        let Self { audit, rt, .. } = self;
        drop(rt);
        audit.finish(result)
    }

    /// Whether `s` names a store location (as opposed to a local plaintext file).
    fn is_store(&self, s: &str) -> bool {
        if s.starts_with("s3://") || s.starts_with("file://") || s.starts_with(':') {
            return true;
        }
        if s.contains("://") {
            return true; // an unsupported scheme: let resolve_location say so
        }
        match s.split_once(':') {
            Some((name, _)) => {
                self.cfg.stores.contains_key(name)
                    || (name.len() > 1
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                        && !Path::new(s).exists())
            }
            None => false,
        }
    }

    fn open_store(&self, url: &StoreUrl, mut opts: StoreOptions) -> Result<Store> {
        if opts.journal_dir.is_none() {
            opts.journal_dir = hyok::config::user_state_dir().map(|d| d.join("uploads"));
        }
        Ok(Store::open(url, &opts).map_err(hyok::Error::from)?)
    }

    /// The residency guard: refuse before any request.
    fn permit(&self, store: &Store, url: &StoreUrl) -> Result<()> {
        let shown = url.to_string();
        let d = Destination {
            url: &shown,
            local: url.backend() == Backend::Local,
            endpoint: store.endpoint(),
            region: store.region(),
            bucket: url.bucket(),
            key: url.key(),
        };
        Ok(self.cfg.residency.permits(&d)?)
    }

    /// The keys of a command and, for a configured keyring, its data-key cache.
    fn keyring(&self, a: &StoreKeyArgs) -> Result<(Keyring, Option<CacheLimits>)> {
        let mut cache = None;
        let uris: Vec<String> = if !a.keys.is_empty() {
            a.keys.clone()
        } else {
            let name = a
                .keyring
                .clone()
                .or_else(|| self.cfg.defaults.keyring.clone())
                .ok_or_else(|| {
                    Usage::err(
                        "no key given",
                        Some("pass --key URI or --keyring NAME, or run `hyok init` to create a default keyring"),
                    )
                })?;
            let k = self.cfg.keyring(&name)?;
            cache = k.cache;
            k.keys.clone()
        };
        let keys = uris
            .iter()
            .map(|u| hyok_keystore::open_key(u).map_err(anyhow::Error::from))
            .collect::<Result<Vec<_>>>()?;
        Ok((Keyring::new(keys)?, cache))
    }

    fn transfer(&self, concurrency: Option<usize>, part_size: Option<usize>) -> Transfer {
        let t = &self.cfg.transfer;
        Transfer::new(
            part_size.or(t.part_size_mib).unwrap_or(8) * 1024 * 1024,
            concurrency.or(t.concurrency).unwrap_or(8),
        )
    }

    fn objects(
        &self,
        store: Store,
        (keyring, cache): (Keyring, Option<CacheLimits>),
        settings: Settings,
        transfer: Transfer,
    ) -> Result<Objects> {
        let mut manager = KeyManager::new(keyring);
        if let Some(limits) = cache {
            manager = manager.with_cache(Arc::new(MemoryCache::new(limits)?));
        }
        if let Some(sink) = self.audit.sink() {
            manager = manager.with_audit(sink);
        }
        let client = Client::new(manager).with_settings(settings);
        Ok(Objects::new(
            client,
            store,
            transfer,
            self.rt.handle().clone(),
        ))
    }
}

fn context(pairs: &[(String, String)]) -> Result<EncryptionContext> {
    let mut ctx = EncryptionContext::new();
    for (k, v) in pairs {
        if let Some(prev) = ctx.insert(k.clone(), v.clone()) {
            if &prev != v {
                return Err(Usage::err(
                    format!("-c {k} given twice with different values"),
                    None,
                ));
            }
        }
    }
    Ok(ctx)
}

/// A reader that counts bytes into a progress bar.
struct Counting<R> {
    inner: R,
    pb: Option<ProgressBar>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(pb) = &self.pb {
            pb.inc(n as u64);
        }
        Ok(n)
    }
}

/// A writer that counts bytes into a progress bar.
struct CountingW<'a> {
    inner: &'a mut dyn Write,
    pb: Option<ProgressBar>,
}

impl Write for CountingW<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(pb) = &self.pb {
            pb.inc(n as u64);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// One progress bar for a whole command: bytes, objects, rate, ETA (only on a terminal).
fn progress(quiet: bool, total_bytes: u64, objects: usize) -> Option<ProgressBar> {
    if quiet || !io::stderr().is_terminal() {
        return None;
    }
    let pb = ProgressBar::new(total_bytes);
    pb.set_style(
        ProgressStyle::with_template(
            "{bar:30} {bytes}/{total_bytes} {msg} {binary_bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_message(format!("0/{objects} objects"));
    Some(pb)
}

fn settings(a: &CpArgs) -> Settings {
    Settings {
        suite: match a.suite {
            SuiteArg::Committed => AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
            SuiteArg::CommittedSigned => AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384,
        },
        encrypt: EncryptOptions {
            frame_length: a.frame_length,
            ..EncryptOptions::default()
        },
        ..Settings::default()
    }
}

fn file_times(meta: &std::fs::Metadata) -> Option<SystemTime> {
    meta.modified().ok()
}

/// Result of one object of a (possibly recursive) copy.
enum Done {
    Copied(u64),
    Skipped,
}

pub(crate) fn cp(loaded: Loaded, a: CpArgs) -> Result<()> {
    let env = Env::new(loaded)?;
    let result = cp_run(&env, &a);
    env.finish(result)
}

fn cp_run(env: &Env, a: &CpArgs) -> Result<()> {
    let src_store = env.is_store(&a.src);
    let dst_store = env.is_store(&a.dst);
    match (src_store, dst_store) {
        (false, true) => {
            if a.range.is_some() {
                return Err(Usage::err("--range applies to downloads only", None));
            }
            if a.recursive {
                upload_tree(env, a)
            } else {
                upload_one(env, a)
            }
        }
        (true, false) => {
            if a.recursive {
                if a.range.is_some() {
                    return Err(Usage::err("--range cannot be combined with -r", None));
                }
                download_tree(env, a)
            } else {
                download_one(env, a)
            }
        }
        (true, true) => Err(Usage::err(
            "copying from one store to another is not supported yet",
            Some("download with `hyok cp STORE-LOCATION FILE`, then upload the file"),
        )),
        (false, false) => Err(Usage::err(
            format!("neither {:?} nor {:?} is a store location", a.src, a.dst),
            Some("store locations are s3://BUCKET/KEY, file:///DIR/KEY, NAME:KEY (configured store) or :KEY (default store)"),
        )),
    }
}

fn stale_uploads(env: &Env, store: &Store) {
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

fn upload_one(env: &Env, a: &CpArgs) -> Result<()> {
    let (mut url, opts) = env.cfg.resolve_location(&a.dst)?;
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
        url = url.join(name)?;
    }
    let store = env.open_store(&url, opts)?;
    env.permit(&store, &url)?;
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
    let keyring = env.keyring(&a.keys)?;
    let transfer = env.transfer(a.concurrency, a.part_size);
    let objects = env
        .objects(store.clone(), keyring, settings(a), transfer)?
        .bind_location(!a.no_bind_location && env.cfg.defaults.bind_location.unwrap_or(true));
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

/// Files under `root` (following no symbolic links to folders), with `/`-separated paths
/// relative to it, sorted.
/// A local file found by `walk`: path, store key, size, modification time.
type WalkEntry = (PathBuf, String, u64, Option<SystemTime>);

fn walk(root: &Path) -> Result<Vec<WalkEntry>> {
    let mut out = Vec::new();
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
                let rel = path
                    .strip_prefix(root)
                    .ok()
                    .and_then(|p| p.to_str())
                    .ok_or_else(|| anyhow::anyhow!("{} is not valid UTF-8", path.display()))?
                    .replace(std::path::MAIN_SEPARATOR, "/");
                out.push((path, rel, meta.len(), file_times(&meta)));
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// Progress of a recursive copy: bytes on the bar, finished objects in its message.
#[derive(Clone)]
struct Tally {
    pb: Option<ProgressBar>,
    done: Arc<AtomicU64>,
    total: usize,
}

impl Tally {
    fn new(pb: Option<ProgressBar>, total: usize) -> Self {
        Self {
            pb,
            done: Arc::new(AtomicU64::new(0)),
            total,
        }
    }

    /// One more object finished; `bytes` of it not yet on the bar.
    fn object_done(&self, bytes: u64) {
        let d = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(pb) = &self.pb {
            pb.inc(bytes);
            pb.set_message(format!("{d}/{} objects", self.total));
        }
    }
}

/// Run `work` on every item on blocking threads, `jobs` at a time; each result comes back
/// with the item's name (`name`), in completion order.
fn run_jobs<T, N, W>(
    env: &Env,
    items: Vec<T>,
    jobs: usize,
    name: N,
    work: W,
    tally: &Tally,
) -> Vec<(String, Result<Done>)>
where
    T: Send + 'static,
    N: Fn(&T) -> String,
    W: Fn(T, &Tally) -> Result<Done> + Send + Sync + 'static,
{
    let work = Arc::new(work);
    env.rt.block_on(
        futures::stream::iter(items)
            .map(|item| {
                let (work, tally) = (work.clone(), tally.clone());
                let name = name(&item);
                async move {
                    let res = tokio::task::spawn_blocking(move || work(item, &tally))
                        .await
                        .map_err(|e| anyhow::anyhow!("worker failed: {e}"))
                        .and_then(|r| r);
                    (name, res)
                }
            })
            .buffer_unordered(jobs)
            .collect(),
    )
}

fn finish_many(
    pb: Option<ProgressBar>,
    results: Vec<(String, Result<Done>)>,
    verb: &str,
) -> Result<()> {
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    let total = results.len();
    let (mut copied, mut skipped, mut bytes) = (0usize, 0usize, 0u64);
    let mut failures = Vec::new();
    for (name, r) in results {
        match r {
            Ok(Done::Copied(n)) => {
                copied += 1;
                bytes += n;
            }
            Ok(Done::Skipped) => skipped += 1,
            Err(e) => failures.push((name, e)),
        }
    }
    eprintln!(
        "hyok: {verb} {copied} object(s), {bytes} bytes; skipped {skipped} already complete and identical"
    );
    if failures.is_empty() {
        return Ok(());
    }
    for (name, e) in failures.iter().skip(1) {
        eprintln!(
            "hyok: failed: {name}: {}",
            format!("{e:#}").replace('\n', " ")
        );
    }
    let (name, first) = failures.swap_remove(0);
    Err(first.context(format!(
        "{} of {total} object(s) failed; {name}",
        failures.len() + 1
    )))
}

fn upload_tree(env: &Env, a: &CpArgs) -> Result<()> {
    let root = PathBuf::from(&a.src);
    if !root.is_dir() {
        return Err(Usage::err(
            format!("{} is not a folder", root.display()),
            Some("-r copies the contents of a folder"),
        ));
    }
    let (dst, opts) = env.cfg.resolve_location(&a.dst)?;
    let dst = dst.as_folder();
    let store = env.open_store(&dst, opts)?;
    let files = walk(&root)?;
    // The residency guard sees every destination before the first request.
    env.permit(&store, &dst)?;
    let mut items = Vec::with_capacity(files.len());
    for (path, rel, len, mtime) in files {
        let url = dst.join(&rel)?;
        env.permit(&store, &url)?;
        items.push((path, url, len, mtime));
    }
    let keyring = env.keyring(&a.keys)?;
    let transfer = env.transfer(a.concurrency, a.part_size);
    let ctx = context(&a.keys.context)?;
    let objects = env
        .objects(store.clone(), keyring, settings(a), transfer)?
        .bind_location(!a.no_bind_location && env.cfg.defaults.bind_location.unwrap_or(true));
    stale_uploads(env, &store);
    let total_bytes: u64 = items.iter().map(|i| i.2).sum();
    let tally = Tally::new(progress(a.quiet, total_bytes, items.len()), items.len());
    let jobs = a.jobs.unwrap_or_else(|| env.cfg.transfer.jobs()).max(1);
    let force = a.force;
    let results = run_jobs(
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
    finish_many(tally.pb, results, "uploaded")
}

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

fn download_one(env: &Env, a: &CpArgs) -> Result<()> {
    let (url, opts) = env.cfg.resolve_location(&a.src)?;
    if url.is_folder() {
        return Err(Usage::err(
            format!("{url} is a prefix, not an object"),
            Some("pass -r to copy everything under it"),
        ));
    }
    let store = env.open_store(&url, opts)?;
    let keyring = env.keyring(&a.keys)?;
    let transfer = env.transfer(a.concurrency, a.part_size);
    let objects = env
        .objects(store, keyring, settings(a), transfer)?
        .bind_location(!a.no_bind_location && env.cfg.defaults.bind_location.unwrap_or(true));
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

async fn list_all(store: &Store, url: &StoreUrl) -> Result<Vec<ObjectInfo>> {
    let mut v: Vec<ObjectInfo> = store
        .list(url)
        .try_collect()
        .await
        .map_err(hyok::Error::from)?;
    v.sort_by(|a, b| a.url.key().cmp(b.url.key()));
    Ok(v)
}

fn download_tree(env: &Env, a: &CpArgs) -> Result<()> {
    let (src, opts) = env.cfg.resolve_location(&a.src)?;
    let src = src.as_folder();
    let store = env.open_store(&src, opts)?;
    let listed = env.rt.block_on(list_all(&store, &src))?;
    let root = PathBuf::from(&a.dst);
    let keyring = env.keyring(&a.keys)?;
    let transfer = env.transfer(a.concurrency, a.part_size);
    let objects = env
        .objects(store, keyring, settings(a), transfer)?
        .bind_location(!a.no_bind_location && env.cfg.defaults.bind_location.unwrap_or(true));
    let reproduced = context(&a.keys.context)?;
    let mut items = Vec::new();
    for info in listed {
        let rel = info.url.key()[src.key().len()..].to_owned();
        let target = objects::local_target(&root, &rel)?;
        items.push((info, rel, target));
    }
    // Plaintext sizes are only known per object; the bar counts stored bytes as an estimate.
    let total: u64 = items.iter().map(|i| i.0.size).sum();
    let tally = Tally::new(progress(a.quiet, total, items.len()), items.len());
    let jobs = a.jobs.unwrap_or_else(|| env.cfg.transfer.jobs()).max(1);
    let (force, fsync, release) = (a.force, a.fsync, a.release.release());
    let results = run_jobs(
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
    finish_many(tally.pb, results, "downloaded")
}

pub(crate) fn cat(loaded: Loaded, a: CatArgs) -> Result<()> {
    let env = Env::new(loaded)?;
    let result = cat_run(&env, &a);
    env.finish(result)
}

fn cat_run(env: &Env, a: &CatArgs) -> Result<()> {
    let (url, opts) = env.cfg.resolve_location(&a.src)?;
    if url.is_folder() {
        return Err(Usage::err(
            format!("{url} is a prefix, not an object"),
            None,
        ));
    }
    let store = env.open_store(&url, opts)?;
    let keyring = env.keyring(&a.keys)?;
    let objects = env
        .objects(
            store,
            keyring,
            Settings::default(),
            env.transfer(None, None),
        )?
        .bind_location(env.cfg.defaults.bind_location.unwrap_or(true));
    let reproduced = context(&a.keys.context)?;
    let mut out = Output::open(&None, &None, false, Content::Plaintext(a.release.release()))?;
    let gate = out.gate();
    objects
        .get_inspecting(&url, out.writer(), a.range, &reproduced, &mut |h| {
            if let Some(g) = &gate {
                g.set_signed(h.suite.signature().is_some());
            }
        })
        .map_err(|e| out.explain(e.into()))?;
    out.commit(false)
}

pub(crate) fn ls(loaded: Loaded, a: LsArgs) -> Result<()> {
    let env = Env::new(loaded)?;
    let (url, opts) = env.cfg.resolve_location(&a.location)?;
    let store = env.open_store(&url, opts)?;
    // An object name lists that object; otherwise the location is a prefix.
    let single = if url.is_folder() {
        None
    } else {
        env.rt
            .block_on(store.try_head(&url))
            .map_err(hyok::Error::from)?
    };
    let (base, infos) = match single {
        Some(i) => (url.clone(), vec![i]),
        None => {
            let folder = url.as_folder();
            let v = env.rt.block_on(list_all(&store, &folder))?;
            (folder, v)
        }
    };
    // Keys are not needed to describe objects: an empty keyring is never used here.
    let objects = Objects::new(
        Client::new(KeyManager::new(Keyring::new(vec![Arc::new(NoKey)])?)),
        store.clone(),
        env.transfer(None, None),
        env.rt.handle().clone(),
    );
    let long = a.long;
    let summaries: Vec<Result<ObjectSummary>> = env.rt.block_on(
        futures::stream::iter(infos)
            .map(|info| {
                let (objects, store) = (objects.clone(), store.clone());
                async move {
                    let info = if store.backend() == Backend::S3 && !long {
                        store.head(&info.url).await.map_err(hyok::Error::from)?
                    } else {
                        info
                    };
                    tokio::task::spawn_blocking(move || objects.describe(&info, long))
                        .await
                        .map_err(|e| anyhow::anyhow!("worker failed: {e}"))
                }
            })
            .buffered(16)
            .collect(),
    );
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut count = 0;
    for s in summaries {
        let s = s?;
        count += 1;
        let name = if s.url == base {
            s.url.file_name().unwrap_or("").to_owned()
        } else {
            s.url.key()[base.key().len()..].to_owned()
        };
        let size = s
            .plaintext_len
            .map_or_else(|| "?".to_owned(), |n| n.to_string());
        let line = if !s.is_message {
            format!(
                "{:>12}  {:<6}  {:<24}  {name}",
                "-", "-", "(not an hyok object)"
            )
        } else {
            format!(
                "{size:>12}  {:<6}  {:<24}  {name}",
                s.suite.as_deref().unwrap_or("?"),
                s.wrapping_keys.join(",")
            )
        };
        writeln!(out, "{line}")?;
        if long {
            let t = humantime::format_rfc3339_seconds(s.last_modified);
            writeln!(out, "    stored {} bytes, modified {t}", s.stored_len)?;
            if let Some(ctx) = &s.context {
                let pairs: Vec<String> = ctx.iter().map(|(k, v)| format!("{k}={v}")).collect();
                writeln!(
                    out,
                    "    context: {}",
                    if pairs.is_empty() {
                        "(empty)".to_owned()
                    } else {
                        pairs.join(", ")
                    }
                )?;
            }
        }
    }
    out.flush()?;
    if count == 0 {
        eprintln!("hyok: no objects under {url}");
    }
    Ok(())
}

pub(crate) fn rm(loaded: Loaded, a: RmArgs) -> Result<()> {
    let env = Env::new(loaded)?;
    let (url, opts) = env.cfg.resolve_location(&a.location)?;
    let store = env.open_store(&url, opts)?;
    if !a.recursive {
        if url.is_folder() {
            return Err(Usage::err(
                format!("{url} is a prefix"),
                Some("pass -r to delete everything under it"),
            ));
        }
        env.rt
            .block_on(async {
                store.head(&url).await?;
                store.delete(&url).await
            })
            .map_err(hyok::Error::from)?;
        eprintln!("hyok: deleted {url}");
        return Ok(());
    }
    let folder = url.as_folder();
    let all = env.rt.block_on(list_all(&store, &folder))?;
    if all.is_empty() {
        eprintln!("hyok: no objects under {folder}");
        return Ok(());
    }
    if !a.yes {
        if !io::stdin().is_terminal() {
            return Err(Usage::err(
                format!(
                    "refusing to delete {} object(s) under {folder} without confirmation",
                    all.len()
                ),
                Some("pass --yes to confirm"),
            ));
        }
        eprint!("delete {} object(s) under {folder}? [y/N] ", all.len());
        let mut answer = String::new();
        io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            eprintln!("hyok: nothing deleted");
            return Ok(());
        }
    }
    let n = all.len();
    let results: Vec<Result<(), hyok::store::Error>> = env.rt.block_on(
        futures::stream::iter(all)
            .map(|i| {
                let store = store.clone();
                async move { store.delete(&i.url).await }
            })
            .buffer_unordered(16)
            .collect(),
    );
    let failed: Vec<_> = results.into_iter().filter_map(|r| r.err()).collect();
    if let Some(e) = failed.into_iter().next() {
        return Err(anyhow::Error::from(hyok::Error::from(e)).context("deleting"));
    }
    eprintln!("hyok: deleted {n} object(s) under {folder}");
    Ok(())
}

/// A key that never matches: `ls` describes objects without any key.
#[derive(Debug)]
struct NoKey;

static NO_KEY_INFO: std::sync::LazyLock<hyok_keystore::KeyInfo> =
    std::sync::LazyLock::new(|| hyok_keystore::KeyInfo {
        backend: "none",
        uri: "none".into(),
        provider_id: "none".into(),
        key_name: "none".into(),
    });

#[async_trait::async_trait]
impl hyok_keystore::KeyStore for NoKey {
    fn info(&self) -> &hyok_keystore::KeyInfo {
        &NO_KEY_INFO
    }

    async fn wrap(
        &self,
        _: &hyok_core::DataKey,
        _: hyok_keystore::WrapRequest<'_>,
    ) -> hyok_keystore::Result<hyok_core::EncryptedDataKey> {
        Err(hyok_keystore::Error::Config("ls uses no key".into()))
    }

    async fn unwrap(
        &self,
        _: &hyok_core::EncryptedDataKey,
        _: hyok_keystore::WrapRequest<'_>,
    ) -> hyok_keystore::Result<Option<hyok_core::DataKey>> {
        Ok(None)
    }
}
