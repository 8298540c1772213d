//! The `hyok` command-line tool.
#![forbid(unsafe_code)]

mod args;
mod cmd;
mod io;
mod pipe;
mod report;
mod signals;
mod stream;
mod tempout;

use std::process::ExitCode;

use clap::Parser;

/// Usage errors: a [`hyok::Error::Usage`] (exit status 2) with an optional hint.
pub(crate) struct Usage;

impl Usage {
    pub(crate) fn err(msg: impl Into<String>, hint: Option<&str>) -> anyhow::Error {
        hyok::Error::usage(msg, hint).into()
    }
}

fn main() -> ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return report::clap_error(&e),
    };
    hyok::frontend::init_logging();
    if let Err(e) = hyok::require_fips_mode() {
        return report::error(&e.into());
    }
    match cmd::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report::error(&e),
    }
}
