//! `hyok-gateway`, the program `hyok gateway` runs: the S3 endpoint of the configuration's
//! `[gateway]` section on a session of that configuration (each credential names its
//! keyring, whose `[keyrings.NAME.cache]` applies), until SIGINT or SIGTERM.
//!
//! The library (`hyok_gateway`) forbids `unsafe` code; this program makes one FFI call,
//! `mallopt` (see [`tune_malloc`]), with an explicit `#[allow]` beside it, as the workspace's
//! lint settings intend for such a call.

use std::process::ExitCode;

use hyok::frontend;
use hyok::{CacheChoice, KeySource, Session, SessionConfig};

const ABOUT: &str = "Serve S3 on the configuration's [gateway] section: objects are \
    encrypted under its keyrings before they reach the backend.";

fn main() -> ExitCode {
    tune_malloc();
    frontend::server_main("hyok-gateway", ABOUT, |a| {
        let c = SessionConfig::load(a.config.as_deref())?
            .keys(KeySource::Default)
            .cache(CacheChoice::Keyring);
        hyok_gateway::run(Session::open(c)?, a.listen.as_deref())
    })
}

/// Keeps freed memory in glibc's heaps instead of returning it to the kernel at once.
///
/// Every request moves MiB-sized buffers (backend bodies, 4 MiB crypto batches, response
/// chunks) that live for milliseconds. glibc's defaults trim a thread arena's heap as soon
/// as its free top exceeds about twice the largest buffer it has mmapped (a few hundred KiB
/// here), so those buffers were handed back with `madvise` and page-faulted (and zeroed by
/// the kernel) in again for the next request: a third of the gateway's CPU time during a
/// download (perf, docs/BENCHMARKS.md). Buffers up to 32 MiB (glibc's maximum) now come from
/// the heaps, and a heap is trimmed only when 64 MiB at its top are free. There is one heap
/// (arena) per core instead of glibc's eight: memory one heap keeps is then reused by more
/// threads, which keeps the peak RSS where glibc's defaults had it (measured: a 1 GiB aws cli
/// download's peak 237-311 MiB against 211-252 MiB with glibc's defaults, for about a quarter
/// less gateway CPU). *Cost:* memory freed by a burst stays mapped (up to the trim threshold
/// per heap); threads share the heaps' locks for allocations their own caches do not serve.
/// Settings an operator gives in `GLIBC_TUNABLES` (`glibc.malloc.*`) win: then nothing is
/// changed here.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_malloc() {
    const MMAP_THRESHOLD: libc::c_int = 32 << 20;
    const TRIM_THRESHOLD: libc::c_int = 64 << 20;
    if std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc.")) {
        return;
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let arenas = libc::c_int::try_from(cores).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt takes two integers and no pointer, and it is called here first thing
    // in `main`, before the program starts any thread. A value it does not accept leaves
    // the setting as it was (return value 0), which is harmless, so the result is not
    // checked.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        libc::mallopt(libc::M_ARENA_MAX, arenas);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}
