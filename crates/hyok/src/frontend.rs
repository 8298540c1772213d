//! The edges every front end shares: the `hyok` CLI and the two servers it starts
//! (`hyok-gateway`, `hyok-xks`). Logging from `HYOK_LOG`, a failure as one escaped line plus
//! an optional hint with the exit status of its kind, and a server's small command line.
//! Meaning comes from the typed [`Error`] found in the chain, never from message text.

use std::error::Error as StdError;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::text::escape_controls;
use crate::{Error, ErrorClass, ErrorKind};

/// Log to stderr when `HYOK_LOG` is set (a `tracing` filter such as `info` or
/// `hyok_keystore=debug`); nothing otherwise.
pub fn init_logging() {
    if std::env::var_os("HYOK_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("HYOK_LOG"))
            .with_writer(std::io::stderr)
            // Colours only on a terminal, not in a log file.
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init();
    }
}

/// `e` and its sources, outermost first.
fn chain<'a>(
    e: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(e), |&c| c.source())
}

/// The facade error in a chain, if any.
pub fn facade_error<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a Error> {
    chain(e).find_map(|c| c.downcast_ref::<Error>())
}

/// Kind and class of a failure (one without a facade error is an operation failure of
/// class `io`: local I/O).
pub fn classify(e: &(dyn StdError + 'static)) -> (ErrorKind, ErrorClass) {
    match facade_error(e) {
        Some(h) => (h.kind(), h.class()),
        None => (ErrorKind::Operation, ErrorClass::Io),
    }
}

/// The whole chain on one escaped line, each cause once: a cause whose text its parent
/// already shows (messages that include their source) is not repeated.
pub fn one_line(e: &(dyn StdError + 'static)) -> String {
    let mut line = String::new();
    for cause in chain(e) {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    escape_controls(&line)
}

/// Print `hyok: error: …` and the hint, if any, to stderr; the exit status of the
/// failure's kind (2 usage or configuration, 1 operation).
pub fn report(e: &(dyn StdError + 'static)) -> ExitCode {
    let (kind, _) = classify(e);
    eprintln!("hyok: error: {}", one_line(e));
    if let Some(h) = facade_error(e).and_then(Error::hint) {
        eprintln!("hint: {}", escape_controls(&h));
    }
    ExitCode::from(kind.exit_code())
}

/// The command line of a server binary (`hyok-gateway`, `hyok-xks`), which `hyok gateway`
/// and `hyok xks` start with the flags they parsed: `[--config FILE] [--listen ADDR:PORT]`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ServerArgs {
    /// The configuration file (else `$HYOK_CONFIG`, else the default path).
    pub config: Option<PathBuf>,
    /// The address to listen on, overriding the configuration's.
    pub listen: Option<String>,
    /// `--help` was asked for: print [`ServerArgs::usage`] and exit 0.
    pub help: bool,
}

impl ServerArgs {
    /// Parse `args` (without the program name). A usage error names the argument.
    pub fn parse(program: &str, args: impl IntoIterator<Item = OsString>) -> crate::Result<Self> {
        let hint = format!("usage: {}", Self::usage(program));
        let mut out = Self::default();
        let mut args = args.into_iter();
        while let Some(a) = args.next() {
            let a = a.to_string_lossy().into_owned();
            let (name, inline) = match a.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
                _ => (a.clone(), None),
            };
            let mut value = || -> crate::Result<String> {
                match inline
                    .clone()
                    .or_else(|| args.next().map(|v| v.to_string_lossy().into_owned()))
                {
                    Some(v) if !v.is_empty() => Ok(v),
                    _ => Err(Error::usage(format!("{name} needs a value"), Some(&hint))),
                }
            };
            match name.as_str() {
                "--config" => out.config = Some(PathBuf::from(value()?)),
                "--listen" => out.listen = Some(value()?),
                "-h" | "--help" => out.help = true,
                _ => {
                    return Err(Error::usage(
                        format!("unexpected argument '{}'", escape_controls(&a)),
                        Some(&hint),
                    ))
                }
            }
        }
        Ok(out)
    }

    /// One line of usage.
    pub fn usage(program: &str) -> String {
        format!("{program} [--config FILE] [--listen ADDR:PORT]")
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM: a server's signal to drain and stop.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// The `main` of a server binary: logging, its command line (`--help` prints `about` and
/// the usage), then `run`; a failure is reported as [`report`] does.
pub fn server_main(
    program: &str,
    about: &str,
    run: impl FnOnce(ServerArgs) -> crate::Result<()>,
) -> ExitCode {
    init_logging();
    if let Err(e) = crate::require_fips_mode() {
        return report(&e);
    }
    let args = match ServerArgs::parse(program, std::env::args_os().skip(1)) {
        Ok(a) => a,
        Err(e) => return report(&e),
    };
    if args.help {
        println!("{about}\n\nUsage: {}", ServerArgs::usage(program));
        return ExitCode::SUCCESS;
    }
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> crate::Result<ServerArgs> {
        ServerArgs::parse("hyok-x", args.iter().map(OsString::from))
    }

    #[test]
    fn server_arguments() {
        assert_eq!(parse(&[]).unwrap(), ServerArgs::default());
        let a = parse(&["--config", "c.toml", "--listen=127.0.0.1:1"]).unwrap();
        assert_eq!(a.config, Some(PathBuf::from("c.toml")));
        assert_eq!(a.listen.as_deref(), Some("127.0.0.1:1"));
        assert!(parse(&["--help"]).unwrap().help);
        let e = parse(&["--listen"]).unwrap_err();
        assert_eq!(e.to_string(), "--listen needs a value");
        assert_eq!(e.kind(), ErrorKind::Usage);
        let e = parse(&["--bogus\x1b"]).unwrap_err();
        assert_eq!(e.to_string(), "unexpected argument '--bogus\\x1b'");
        assert_eq!(
            e.hint().as_deref(),
            Some("usage: hyok-x [--config FILE] [--listen ADDR:PORT]")
        );
    }

    #[test]
    fn one_line_folds_repeated_causes() {
        let e = Error::Io {
            what: "reading x".into(),
            source: std::io::Error::other("gone"),
        };
        let line = one_line(&e);
        assert!(line.starts_with("reading x"), "{line}");
        assert_eq!(line.matches("gone").count(), 1, "{line}");
        assert_eq!(classify(&e).0, ErrorKind::Operation);
    }
}
