//! `hyok key verify-escrow`: the escrow drill. One line per object on stdout (`ok`,
//! `missing`, `failed`, `not-a-message`), a summary line, exit 1 unless every object opens.
//! Object names, key labels and reasons come from the store and the messages: escaped.

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use hyok::escrow::{Finding, Verdict};
use hyok::text::{escape_controls, escape_str};

use super::storage::Env;
use crate::args::VerifyEscrowArgs;

pub(crate) fn verify(config: Option<&Path>, a: VerifyEscrowArgs) -> Result<()> {
    let env = Env::open(config, Some(&a.keys))?;
    let result = verify_run(&env, &a);
    env.finish(result)
}

fn line(f: &Finding) -> String {
    let object = escape_str(&f.object.to_string());
    match &f.verdict {
        Verdict::Opens => format!("ok             {object}"),
        Verdict::Missing { wrapped_by } => format!(
            "missing        {object} (wrapped only by {})",
            escape_str(&wrapped_by.join(", "))
        ),
        Verdict::Fails { reason } => {
            format!("failed         {object}: {}", escape_controls(reason))
        }
        Verdict::NotAMessage { reason } => {
            format!("not-a-message  {object}: {}", escape_controls(reason))
        }
    }
}

fn verify_run(env: &Env, a: &VerifyEscrowArgs) -> Result<()> {
    let ctx = super::crypt::context(&a.keys.context)?;
    let (url, store) = env.open_location(&a.location)?;
    let drill = env
        .session
        .escrow_drill(store, ctx, env.rt.handle().clone())?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut write_error = None;
    let summary = drill.run(&url, a.sample.map(|n| n as usize), |f| {
        if a.quiet && f.verdict.ok() {
            return;
        }
        if write_error.is_none() {
            if let Err(e) = writeln!(out, "{}", line(f)) {
                write_error = Some(e);
            }
        }
    })?;
    if let Some(e) = write_error {
        return Err(e.into());
    }
    if summary.checked == 0 {
        return Err(hyok::Error::Store(hyok::store::Error::NotFound(url.to_string())).into());
    }
    writeln!(
        out,
        "checked {} object(s): {} open, {} missing the keys, {} failed, {} not messages",
        summary.checked, summary.opens, summary.missing, summary.failed, summary.not_messages
    )?;
    out.flush()?;
    if !summary.all_open() {
        anyhow::bail!(
            "escrow drill failed: the keys do not open {} of {} object(s)",
            summary.checked - summary.opens,
            summary.checked
        );
    }
    Ok(())
}
