//! Progress of copies: byte-counting readers and writers, the progress bar of a command,
//! and running many objects' jobs at once with one tally and one summary.

use std::io::{self, IsTerminal, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Result;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};

use super::storage::Env;

/// A reader that counts bytes into a progress bar.
pub(super) struct Counting<R> {
    pub(super) inner: R,
    pub(super) pb: Option<ProgressBar>,
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
pub(super) struct CountingW<'a> {
    pub(super) inner: &'a mut dyn Write,
    pub(super) pb: Option<ProgressBar>,
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
pub(super) fn progress(quiet: bool, total_bytes: u64, objects: usize) -> Option<ProgressBar> {
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

/// Result of one object of a (possibly recursive) copy.
pub(super) enum Done {
    Copied(u64),
    Skipped,
}

/// Progress of a recursive copy: bytes on the bar, finished objects in its message.
#[derive(Clone)]
pub(super) struct Tally {
    pub(super) pb: Option<ProgressBar>,
    done: Arc<AtomicU64>,
    total: usize,
}

impl Tally {
    pub(super) fn new(pb: Option<ProgressBar>, total: usize) -> Self {
        Self {
            pb,
            done: Arc::new(AtomicU64::new(0)),
            total,
        }
    }

    /// One more object finished; `bytes` of it not yet on the bar.
    pub(super) fn object_done(&self, bytes: u64) {
        let d = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(pb) = &self.pb {
            pb.inc(bytes);
            pb.set_message(format!("{d}/{} objects", self.total));
        }
    }
}

/// Run `work` on every item on blocking threads, `jobs` at a time; each result comes back
/// with the item's name (`name`), in completion order.
pub(super) fn run_jobs<T, N, W>(
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

pub(super) fn finish_many(
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
