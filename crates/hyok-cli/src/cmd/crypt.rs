//! `hyok encrypt` and `hyok decrypt`.

use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use hyok::audit::{AdminEvent, AdminOp, AuditSettings, MessageEvent, MessageOp};
use hyok::{
    AlgorithmSuite, Client, CommitmentPolicy, DecryptOptions, EncryptOptions, EncryptionContext,
    HeaderLimits, OpLabel, Parallelism, Settings,
};
use hyok_keystore::cache::MemoryCache;
use hyok_keystore::observe::context_hash;
use hyok_keystore::{KeyManager, Keyring, SharedKeyStore};

use super::audit::{error_class, policy_refusal, Session};
use crate::args::{CacheArgs, DecryptArgs, EncryptArgs, KeyArgs, SuiteArg};
use crate::io::{open_input, Content, Output};
use crate::pipe::ReadAhead;
use crate::Usage;

fn open_keys(args: &KeyArgs) -> Result<Vec<SharedKeyStore>> {
    args.keys
        .iter()
        .map(|u| hyok_keystore::open_key(u).map_err(anyhow::Error::from))
        .collect()
}

fn context(args: &KeyArgs) -> Result<EncryptionContext> {
    let mut ctx = EncryptionContext::new();
    for (k, v) in &args.context {
        if let Some(prev) = ctx.insert(k.clone(), v.clone()) {
            if &prev != v {
                return Err(Usage::err(
                    format!("-c {k} given twice with different values"),
                    None,
                ));
            }
        }
    }
    Ok(ctx)
}

/// Most `--threads` per core: more only costs memory and scheduling (frames are CPU-bound).
const THREADS_PER_CORE: usize = 4;

fn parallelism(args: &KeyArgs) -> Result<Parallelism> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let max = cores.saturating_mul(THREADS_PER_CORE);
    match args.threads {
        None => Ok(Parallelism::Global),
        Some(0) => Err(Usage::err("--threads must be at least 1", None)),
        Some(n) if n > max => Err(Usage::err(
            format!(
                "--threads {n} is more than {max} ({THREADS_PER_CORE} per core, {cores} cores)"
            ),
            None,
        )),
        Some(n) => Ok(Parallelism::threads(n)?),
    }
}

fn client(
    keys: Vec<SharedKeyStore>,
    settings: Settings,
    cache: &CacheArgs,
    audit: &Session,
) -> Result<Client> {
    let mut manager = KeyManager::new(Keyring::new(keys)?);
    if let Some(limits) = cache.limits() {
        manager = manager.with_cache(Arc::new(MemoryCache::new(limits)?));
    }
    if let Some(sink) = audit.sink() {
        manager = manager.with_audit(sink);
    }
    Ok(Client::new(manager).with_settings(settings))
}

/// The message record of one command, filled in as the command learns more. Its keys
/// are the canonical URIs of the key stores once they are open, never the `--key`
/// strings as typed (a refused one may hold a secret).
fn message_event(op: MessageOp) -> MessageEvent {
    MessageEvent {
        op,
        keys: Vec::new(),
        suite: None,
        context_sha256: None,
        message_id: None,
        subject: None,
        bytes: None,
        error: None,
        duration: Default::default(),
    }
}

/// Record the message (and a policy refusal), close the log, return the outcome.
fn finish(audit: Session, mut m: MessageEvent, started: Instant, result: Result<()>) -> Result<()> {
    if let Err(e) = &result {
        if let Some(detail) = policy_refusal(e) {
            audit.admin(AdminEvent {
                op: AdminOp::PolicyRefusal,
                key: None,
                subject: m.subject.clone(),
                message_id: m.message_id.clone(),
                detail: Some(detail),
                error: Some("policy"),
                duration: started.elapsed(),
            });
        }
    }
    m.error = result.as_ref().err().map(error_class);
    m.duration = started.elapsed();
    audit.message(m);
    audit.finish(result)
}

/// Copy all of `r` into `w` straight from `r`'s buffer (no copy in between).
fn pump_buffered(r: &mut dyn BufRead, w: &mut dyn Write) -> std::io::Result<u64> {
    let mut total = 0;
    loop {
        let buf = match r.fill_buf() {
            Ok([]) => return Ok(total),
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(buf)?;
        let n = buf.len();
        r.consume(n);
        total += n as u64;
    }
}

pub(crate) fn encrypt(a: EncryptArgs, audit_file: AuditSettings) -> Result<()> {
    let audit = Session::open(audit_file)?;
    let started = Instant::now();
    let mut m = message_event(MessageOp::Encrypt);
    let result = encrypt_run(a, &audit, &mut m);
    finish(audit, m, started, result)
}

fn encrypt_run(a: EncryptArgs, audit: &Session, m: &mut MessageEvent) -> Result<()> {
    let ctx = context(&a.keys)?;
    let required: BTreeSet<String> = a.required.iter().cloned().collect();
    if let Some(k) = required.iter().find(|k| !ctx.contains_key(k)) {
        return Err(Usage::err(
            format!("--required-context {k} has no -c {k}=VALUE"),
            None,
        ));
    }
    let suite = match a.suite {
        SuiteArg::Committed => AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
        SuiteArg::CommittedSigned => AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384,
    };
    let settings = Settings {
        suite,
        encrypt: EncryptOptions {
            frame_length: a.frame_length,
            parallelism: parallelism(&a.keys)?,
        },
        ..Settings::default()
    };
    let keys = open_keys(&a.keys)?;
    m.keys = keys.iter().map(|k| k.info().uri.clone()).collect();
    if let Some(k) = keys.iter().find(|k| !k.can_wrap()) {
        return Err(Usage::err(
            format!("{} cannot encrypt (no public key)", k.info()),
            Some("give raw-rsa keys a public=PEM attribute to encrypt"),
        ));
    }
    let client = client(keys, settings, &a.cache, audit)?;
    let input = open_input(&a.io.input, true)?;
    m.subject.clone_from(&input.name);
    let mut output = Output::open(&a.io.output, &a.io.input, a.io.force, Content::Ciphertext)?;
    let fsync = a.io.fsync;
    let label = OpLabel {
        subject: input.name.clone(),
        ..Default::default()
    };
    let rt = super::runtime()?;
    let materials = rt.block_on(client.encryption_materials(
        &ctx,
        &required,
        input.len.unwrap_or(u64::MAX),
        &label,
    ))?;
    {
        let mut enc = client.encryptor(output.writer(), materials)?;
        let h = enc.header();
        m.suite = Some(h.suite);
        m.message_id = Some(h.message_id.clone());
        m.context_sha256 = Some(context_hash(&h.context));
        let mut reader = ReadAhead::new(input.reader)?;
        pump_buffered(&mut reader, &mut enc).context("encrypting")?;
        let (_, n) = enc.finish()?;
        m.bytes = Some(n);
    }
    output.commit(fsync)
}

pub(crate) fn decrypt(a: DecryptArgs, audit_file: AuditSettings) -> Result<()> {
    let audit = Session::open(audit_file)?;
    let started = Instant::now();
    let mut m = message_event(MessageOp::Decrypt);
    let result = decrypt_run(a, &audit, &mut m);
    finish(audit, m, started, result)
}

fn decrypt_run(a: DecryptArgs, audit: &Session, m: &mut MessageEvent) -> Result<()> {
    let reproduced = context(&a.keys)?;
    let settings = Settings {
        policy: if a.allow_legacy {
            CommitmentPolicy::RequireEncryptAllowDecrypt
        } else {
            CommitmentPolicy::RequireEncryptRequireDecrypt
        },
        limits: HeaderLimits {
            max_edks: a.max_edks,
            max_frame_length: a.max_frame_length,
        },
        decrypt: DecryptOptions {
            parallelism: parallelism(&a.keys)?,
            max_unframed: u64::from(a.max_frame_length),
        },
        ..Settings::default()
    };
    let keys = open_keys(&a.keys)?;
    m.keys = keys.iter().map(|k| k.info().uri.clone()).collect();
    let client = client(keys, settings, &a.cache, audit)?;
    let input = open_input(&a.io.input, true)?;
    m.subject.clone_from(&input.name);
    let mut output = Output::open(
        &a.io.output,
        &a.io.input,
        a.io.force,
        Content::Plaintext(a.release.release()),
    )?;
    let fsync = a.io.fsync;
    let label = OpLabel {
        subject: input.name.clone(),
        ..Default::default()
    };
    let mut reader = ReadAhead::new(input.reader)?;
    let parsed = client.read_header(&mut reader)?;
    let h = &parsed.header;
    if let Some(gate) = output.gate() {
        gate.set_signed(h.suite.signature().is_some());
    }
    m.suite = Some(h.suite);
    m.message_id = Some(h.message_id.clone());
    m.context_sha256 = Some(context_hash(&h.context));
    let rt = super::runtime()?;
    let verified = rt.block_on(client.open(parsed, &reproduced, &label))?;
    // Fail closed: no plaintext leaves before the key use is on disk in the audit log.
    audit.flush()?;
    let mut dec = client.decryptor(verified, reader);
    let n = pump_buffered(&mut dec, output.writer())
        .map_err(|e| output.explain(hyok_core::Error::from_io(e).into()))?;
    m.bytes = Some(n);
    drop(dec);
    output.commit(fsync)
}
