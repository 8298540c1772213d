//! Errors on the terminal: one line `hyok: error: …` plus an optional `hint:` line, the exit
//! status from the error's kind. Meaning comes from the typed [`hyok::Error`] in the chain
//! (kind, class, hint), never from message text; the line is escaped, so nothing read from
//! a message or a store can forge output.

use std::process::ExitCode;

use hyok::frontend;
use hyok::text::escape_controls;
use hyok::{ErrorClass, ErrorKind};

/// Kind and class of a command's failure (local I/O without a facade error is an
/// operation failure of class `io`).
pub(crate) fn classify(e: &anyhow::Error) -> (ErrorKind, ErrorClass) {
    frontend::classify(e.as_ref())
}

/// The whole chain on one escaped line, each cause once.
pub(crate) fn one_line(e: &anyhow::Error) -> String {
    frontend::one_line(e.as_ref())
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Print the error once and return the exit code.
pub(crate) fn error(e: &anyhow::Error) -> ExitCode {
    if is_broken_pipe(e) {
        return ExitCode::from(1);
    }
    frontend::report(e.as_ref())
}

/// clap's errors in the same shape: help and version go to stdout as usual; a usage error
/// becomes one line plus a hint (clap's own tip, or where to find the usage), exit 2.
pub(crate) fn clap_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind as K;
    if matches!(e.kind(), K::DisplayHelp | K::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let text = e.render().to_string();
    let missing = e.kind() == K::DisplayHelpOnMissingArgumentOrSubcommand;
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    // Help shown for a missing command is the usage error "a command is required".
    let first = if missing {
        "a command is required"
    } else {
        lines.next().unwrap_or("invalid command line")
    };
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let mut tip = None;
    let mut usage = None;
    for l in lines {
        if let Some(t) = l.strip_prefix("tip: ") {
            tip.get_or_insert(t.to_owned());
        } else if let Some(u) = l.strip_prefix("Usage: ") {
            usage.get_or_insert(u.to_owned());
        }
    }
    eprintln!("hyok: error: {}", escape_controls(first));
    let hint = match (tip, usage) {
        (Some(t), _) => t,
        (None, Some(u)) => format!("usage: {u} (more with --help)"),
        (None, None) => "`hyok --help` lists the commands and flags".to_owned(),
    };
    eprintln!("hint: {}", escape_controls(&hint));
    ExitCode::from(2)
}
