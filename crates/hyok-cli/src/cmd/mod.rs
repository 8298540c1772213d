//! Commands. Each resolves its flags into stores and streams, then runs.

pub(crate) mod audit;
mod crypt;
mod init;
mod inspect;
mod key;
mod storage;

use anyhow::Result;

use crate::args::{AuditCommand, Cli, Command, KeyCommand};

pub(crate) fn run(cli: Cli) -> Result<()> {
    let config = cli.config;
    let load = || hyok::config::Config::load(config.as_deref());
    // The configuration's [audit] section, for commands that take no other settings from it.
    let audit = || -> Result<hyok::audit::AuditSettings> { Ok(load()?.audit_settings()) };
    match cli.command {
        Command::Init(a) => init::run(config.as_deref(), a),
        Command::Cp(a) => storage::cp(load()?, a),
        Command::Cat(a) => storage::cat(load()?, a),
        Command::Ls(a) => storage::ls(load()?, a),
        Command::Rm(a) => storage::rm(load()?, a),
        Command::Encrypt(a) => crypt::encrypt(a, audit()?),
        Command::Decrypt(a) => crypt::decrypt(a, audit()?),
        Command::Inspect(a) => inspect::run(a),
        Command::Key(KeyCommand::New(a)) => key::new(a, audit()?),
        Command::Key(KeyCommand::List(a)) => key::list(a),
        Command::Key(KeyCommand::Rotate(a)) => key::rotate(a, audit()?),
        Command::Key(KeyCommand::Destroy(a)) => key::destroy(a, audit()?),
        Command::Audit(AuditCommand::Checkpoint(a)) => audit::checkpoint(a, audit()?),
        Command::Audit(AuditCommand::Verify(a)) => audit::verify(a),
        Command::Audit(AuditCommand::Show(a)) => audit::show(a),
        Command::Audit(AuditCommand::PublicKey) => audit::public_key(audit()?),
    }
}

/// A runtime for the async key-store calls (the streaming itself runs on this thread and
/// the crypto pool).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}
