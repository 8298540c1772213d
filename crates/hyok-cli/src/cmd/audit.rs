//! `hyok audit checkpoint|verify|show|public-key`. Every key-using command records into the
//! log through its [`hyok::Session`]; these commands manage and read the log.

use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use hyok::audit::{
    describe, verify_file, Checkpoint, CheckpointVerifier, Filter, Line, LogReader, PublicKey,
    Timestamp, VerifyOptions,
};
use hyok::text::escape_controls;
use hyok::{Session, SessionConfig};

use crate::args::{AuditCheckpointArgs, AuditShowArgs, AuditVerifyArgs, Since};
use crate::io::create_new;
use crate::Usage;

pub(crate) fn checkpoint(config: Option<&Path>, a: AuditCheckpointArgs) -> Result<()> {
    let mut settings = SessionConfig::load(config)?;
    if let Some(p) = a.log {
        settings.audit.log = Some(p);
    }
    if !settings.audit.enabled() {
        return Err(Usage::err(
            "which log? give PATH, set HYOK_AUDIT_LOG or [audit] log in hyok.toml",
            None,
        ));
    }
    if let Some(out) = &a.output {
        if out.exists() {
            return Err(Usage::err(
                format!("{} already exists", out.display()),
                Some("choose a new file name for the checkpoint"),
            ));
        }
    }
    let session = Session::open(settings)?;
    let cp = session.checkpoint();
    let closed = session.close();
    let cp = cp?;
    closed?;
    let json = cp.to_json();
    if let Some(out) = &a.output {
        let mut f = create_new(out, 0o644)?;
        f.write_all(json.as_bytes())
            .and_then(|_| f.write_all(b"\n"))
            .and_then(|_| f.sync_all())
            .with_context(|| format!("writing {}", out.display()))?;
    }
    println!("{json}");
    eprintln!(
        "signed checkpoint: {} records, root {}, key {}, {}",
        cp.size, cp.root, cp.key_id, cp.time
    );
    Ok(())
}

/// Files an auditor hands us are read with a size limit.
fn read_small(path: &Path, what: &str) -> Result<String> {
    use std::io::Read as _;
    let f = std::fs::File::open(path)
        .map_err(|e| Usage::err(format!("cannot open {what} {}: {e}", path.display()), None))?;
    let mut text = String::new();
    f.take(1 << 20)
        .read_to_string(&mut text)
        .map_err(|e| Usage::err(format!("cannot read {what} {}: {e}", path.display()), None))?;
    Ok(text)
}

pub(crate) fn verify(a: AuditVerifyArgs) -> Result<()> {
    let mut keys = Vec::new();
    for p in &a.public_keys {
        let text = read_small(p, "public key")?;
        let k = PublicKey::from_pem(&text).map_err(|e| {
            Usage::err(
                format!("{}: {e}", p.display()),
                Some("`hyok audit public-key` prints the signer's public key"),
            )
        })?;
        keys.push(k);
    }
    let trusted = match &a.trusted_checkpoint {
        Some(p) => {
            let text = read_small(p, "trusted checkpoint")?;
            Some(Checkpoint::from_json(&text).map_err(|e| {
                Usage::err(
                    format!("{} is not a checkpoint: {e}", p.display()),
                    Some("use a line printed by `hyok audit checkpoint`"),
                )
            })?)
        }
        None => None,
    };
    let mut opts = VerifyOptions::new(keys.iter().map(|k| k as &dyn CheckpointVerifier).collect());
    opts.trusted = trusted.as_ref();
    opts.allow_unsigned_tail = a.allow_unsigned_tail;
    let s = verify_file(&a.log, &opts)
        .map_err(hyok::Error::from)
        .with_context(|| format!("audit log {}", a.log.display()))?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    writeln!(
        out,
        "{}: OK: {} records, {} signed checkpoints, root {}",
        a.log.display(),
        s.records,
        s.checkpoints,
        hex(&s.root)
    )?;
    if let Some(c) = &s.last_checkpoint {
        writeln!(
            out,
            "last checkpoint: line {}, {} records, signed {} by key {}",
            c.line, c.size, c.time, c.key_id
        )?;
    }
    if let Some(n) = s.extends_trusted {
        writeln!(
            out,
            "extends the trusted checkpoint of {n} records: nothing it signed was removed or changed"
        )?;
    }
    if s.unsigned_tail > 0 {
        writeln!(
            out,
            "warning: the last {} records are not covered by a checkpoint (accepted by --allow-unsigned-tail)",
            s.unsigned_tail
        )?;
    }
    for t in &s.torn_recovered {
        writeln!(
            out,
            "note: line {}: an interrupted append ({} bytes at offset {}) was kept and recorded by the next writer",
            t.line, t.len, t.offset
        )?;
    }
    out.flush()?;
    Ok(())
}

fn hex(h: &[u8]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn show(a: AuditShowArgs) -> Result<()> {
    let filter = Filter {
        key: a.key,
        op: a.op,
        since: a.since.map(|s| match s {
            Since::At(t) => t,
            Since::Ago(d) => Timestamp::now().saturating_sub(d),
        }),
    };
    let mut reader = LogReader::open(&a.log).map_err(hyok::Error::from)?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut bad = 0u64;
    while let Some(e) = reader.next_entry().map_err(hyok::Error::from)? {
        match &e.parsed {
            Ok(Line::Record(r)) if filter.matches(r) => {
                if a.json {
                    out.write_all(&e.raw)?;
                    out.write_all(b"\n")?;
                } else {
                    // Records hold names read from messages and stores: escaped.
                    writeln!(out, "{}", escape_controls(&describe(r)))?;
                }
            }
            Ok(_) => {}
            Err(why) => {
                bad += 1;
                out.flush()?;
                eprintln!(
                    "hyok: warning: {} line {}: {why}{}",
                    a.log.display(),
                    e.line,
                    if e.torn { " (torn last line)" } else { "" }
                );
            }
        }
    }
    out.flush()?;
    if bad > 0 {
        eprintln!(
            "hyok: warning: {bad} line(s) are not valid records; run `hyok audit verify` on {}",
            a.log.display()
        );
    }
    Ok(())
}

pub(crate) fn public_key(config: Option<&Path>) -> Result<()> {
    let settings = SessionConfig::load(config)?.audit;
    if settings.key.is_none() {
        return Err(Usage::err(
            "no checkpoint signing key: HYOK_AUDIT_KEY is not set",
            Some("set HYOK_AUDIT_KEY (or [audit] key in hyok.toml) to the checkpoint signing key (PEM path or pkcs11: URI)"),
        ));
    }
    let signer = settings.signer()?;
    let public = PublicKey::from_der(signer.public_key_der()).map_err(hyok::Error::from)?;
    print!("{}", public.to_pem());
    eprintln!(
        "checkpoint key {} ({})",
        public.key_id(),
        public.algorithm()
    );
    Ok(())
}
