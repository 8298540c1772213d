//! Commands. Each resolves its flags into a [`hyok::Session`] (configuration file,
//! environment, `--key`/`--keyring`/cache flags), then runs on it.

pub(crate) mod audit;
mod branch;
mod crypt;
mod download;
mod escrow;
mod init;
mod inspect;
mod key;
mod key_health;
mod list;
pub(crate) mod policy;
mod progress;
mod reencrypt;
mod remove;
mod server;
mod shred;
mod shred_key;
mod storage;
mod transfer;
mod upload;

use std::path::Path;

use anyhow::Result;
use hyok::{CacheChoice, KeySource, Session, SessionConfig};

use crate::args::{AuditCommand, BranchCommand, CacheArgs, Cli, Command, KeyCommand, KeySelection};

/// The session of a command: the configuration file and environment, plus the command's
/// key and cache flags (commands without keys pass `None`).
pub(crate) fn session(
    config: Option<&Path>,
    keys: Option<(&KeySelection, &CacheArgs)>,
) -> Result<Session> {
    let mut c = SessionConfig::load(config)?;
    if let Some((select, cache)) = keys {
        c = c.keys(select.source()).cache(cache.choice());
    } else {
        c = c.keys(KeySource::Default).cache(CacheChoice::Off);
    }
    Ok(Session::open(c)?)
}

/// Close the session's audit log (its exit checkpoint) and fold its outcome into the
/// command's.
pub(crate) fn finish<T>(session: Session, result: Result<T>) -> Result<T> {
    match (result, session.close()) {
        (Ok(v), Ok(())) => Ok(v),
        (Ok(_), Err(c)) => Err(c.into()),
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(c)) => Err(e.context(format!("the audit log failed too ({c})"))),
    }
}

/// Record a key or branch lifecycle step (`hyok key …`, `hyok branch …`) with its outcome.
pub(crate) fn record_admin<T>(
    session: &Session,
    op: hyok::audit::AdminOp,
    key: &str,
    detail: Option<String>,
    started: std::time::Instant,
    result: &Result<T>,
) {
    let failed = result.as_ref().err().map(failure);
    session.record_key_admin(
        op,
        key,
        detail,
        started,
        failed.as_ref().map(|(c, t)| (*c, t.as_str())),
    );
}

/// The audit record's view of a failure: its class and one line of text.
pub(crate) fn failure(e: &anyhow::Error) -> (hyok::ErrorClass, String) {
    (crate::report::classify(e).1, crate::report::one_line(e))
}

pub(crate) fn run(cli: Cli) -> Result<()> {
    let config = cli.config.as_deref();
    match cli.command {
        Command::Init(a) => init::run(config, a),
        Command::Cp(a) => transfer::cp(config, a),
        Command::Cat(a) => transfer::cat(config, a),
        Command::Ls(a) => list::ls(config, a),
        Command::Rm(a) => remove::rm(config, a),
        Command::Encrypt(a) => crypt::encrypt(config, a),
        Command::Decrypt(a) => crypt::decrypt(config, a),
        Command::Inspect(a) => inspect::run(a),
        Command::Key(KeyCommand::New(a)) => key::new(config, a),
        Command::Key(KeyCommand::List(a)) => key::list(config, a),
        Command::Key(KeyCommand::Rotate(a)) => key::rotate(config, a),
        Command::Key(KeyCommand::Destroy(a)) => key::destroy(config, a),
        Command::Key(KeyCommand::Health(a)) => key_health::run(config, a),
        Command::Branch(BranchCommand::New(a)) => branch::new(config, a),
        Command::Branch(BranchCommand::Rotate(a)) => branch::rotate(config, a),
        Command::Branch(BranchCommand::List(a)) => branch::list(config, a),
        Command::Branch(BranchCommand::Show(a)) => branch::show(config, a),
        Command::Branch(BranchCommand::Rewrap(a)) => branch::rewrap(config, a),
        Command::Branch(BranchCommand::Destroy(a)) => branch::destroy(config, a),
        Command::Reencrypt(a) => reencrypt::run(config, a),
        Command::Key(KeyCommand::VerifyEscrow(a)) => escrow::verify(config, a),
        Command::Audit(AuditCommand::Checkpoint(a)) => audit::checkpoint(config, a),
        Command::Audit(AuditCommand::Verify(a)) => audit::verify(a),
        Command::Audit(AuditCommand::Show(a)) => audit::show(a),
        Command::Audit(AuditCommand::PublicKey) => audit::public_key(config),
        Command::Xks(a) => server::exec("hyok-xks", config, a.listen.as_deref()),
        Command::Gateway(a) => server::exec("hyok-gateway", config, a.listen.as_deref()),
        Command::Policy(c) => policy::run(config, c),
    }
}

/// A runtime for the async key-store and storage calls (the streaming itself runs on the
/// calling thread and the crypto pool).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}
