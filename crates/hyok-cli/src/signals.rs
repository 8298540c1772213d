//! SIGINT, SIGTERM and SIGHUP end hyok with the exit status shells expect (128 + signal:
//! 130, 143, 129) after removing every named temporary output file.
//!
//! Most temporary outputs have no name at all (`O_TMPFILE`, see `tempout`), so the kernel
//! drops them whatever ends the process, SIGKILL included. Where the filesystem cannot make
//! unnamed files, the temporary file's name is registered here while it exists; a signal
//! removes every registered file before the process exits. Registering, renaming into place
//! and removing all happen under one lock, so a signal never races with a rename.
//!
//! SIGPIPE needs nothing: the Rust runtime ignores it, so a closed stdout is a write error
//! (EPIPE) that takes the ordinary error path, which removes the temporary file.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, Once};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Named temporary files to remove if a signal ends the process.
static NAMED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static INSTALL: Once = Once::new();

/// The registry, even if a thread panicked while holding it (the list stays valid).
pub(crate) fn registry() -> MutexGuard<'static, Vec<PathBuf>> {
    NAMED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Start the signal thread (once per process). If the handlers cannot be installed, the
/// default actions stay (the process dies; unnamed temporary files still vanish).
pub(crate) fn install() {
    INSTALL.call_once(|| {
        let Ok(mut signals) = Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
            return;
        };
        // If the thread cannot start (no threads left), the process has bigger problems;
        // the signals then go unanswered until it ends on its own.
        let _ = std::thread::Builder::new()
            .name("hyok-signals".into())
            .spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    let named = registry();
                    for p in named.iter() {
                        let _ = std::fs::remove_file(p);
                    }
                    // Exit while holding the lock: no rename can follow the removal.
                    std::process::exit(128 + sig);
                }
            });
    });
}

/// Register `path` in an already held registry.
pub(crate) fn add(named: &mut Vec<PathBuf>, path: &Path) {
    named.push(path.to_path_buf());
}

/// Forget `path` in an already held registry.
pub(crate) fn forget(named: &mut Vec<PathBuf>, path: &Path) {
    named.retain(|p| p != path);
}
