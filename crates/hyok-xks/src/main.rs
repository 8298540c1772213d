//! `hyok-xks`, the program `hyok xks` runs: the AWS KMS External Key Store proxy of the
//! configuration's `[xks]` section, until SIGINT or SIGTERM.
#![forbid(unsafe_code)]

use std::process::ExitCode;

const ABOUT: &str = "Serve the AWS KMS External Key Store proxy API (v1.0.3) on the \
    configuration's [xks] section.";

fn main() -> ExitCode {
    hyok::frontend::server_main("hyok-xks", ABOUT, |a| {
        hyok_xks::run(a.config.as_deref(), a.listen.as_deref())
    })
}
