//! `hyok encrypt` and `hyok decrypt`.

use std::collections::BTreeSet;
use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use hyok::audit::{context_hash, MessageEvent, MessageOp};
use hyok::{
    AlgorithmSuite, CommitmentPolicy, DecryptOptions, EncryptOptions, EncryptionContext,
    HeaderLimits, OpLabel, Parallelism, Session, Settings,
};

use crate::args::{DecryptArgs, EncryptArgs, KeyArgs, SuiteArg};
use crate::io::{open_input, Content, Output};
use crate::pipe::ReadAhead;
use crate::Usage;

/// The `-c KEY=VALUE` pairs as a context; a key given twice must repeat its value.
pub(crate) fn context(pairs: &[(String, String)]) -> Result<EncryptionContext> {
    let mut ctx = EncryptionContext::new();
    for (k, v) in pairs {
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
        Some(n) => Ok(Parallelism::threads(n).map_err(hyok::Error::from)?),
    }
}

/// The message record of one command, filled in as the command learns more.
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

/// Record the message (and a policy refusal), close the session, return the outcome.
fn finish(session: Session, m: MessageEvent, started: Instant, result: Result<()>) -> Result<()> {
    let failed = result.as_ref().err().map(super::failure);
    session.record_message(
        m,
        started,
        failed.as_ref().map(|(c, text)| (*c, text.as_str())),
    );
    super::finish(session, result)
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

pub(crate) fn encrypt(config: Option<&Path>, a: EncryptArgs) -> Result<()> {
    let session = super::session(config, Some((&a.keys.select, &a.cache)))?;
    let started = Instant::now();
    let mut m = message_event(MessageOp::Encrypt);
    let result = encrypt_run(a, &session, &mut m);
    finish(session, m, started, result)
}

fn encrypt_run(a: EncryptArgs, session: &Session, m: &mut MessageEvent) -> Result<()> {
    let ctx = context(&a.keys.context)?;
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
    let client = session.client(settings)?;
    let keys = client.keys().keyring().keys();
    m.keys = keys.iter().map(|k| k.info().uri.clone()).collect();
    if let Some(k) = keys.iter().find(|k| !k.can_wrap()) {
        return Err(Usage::err(
            format!("{} cannot encrypt (no public key)", k.info()),
            Some("give raw-rsa keys a public=PEM attribute to encrypt"),
        ));
    }
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
    // The encryptor reads the input into its own buffers and seals from there. A regular
    // file as output gets the sealed frames straight from it (written while the next batch
    // is sealed); other outputs through their writer thread.
    let file = output.file().transpose().context("opening the output")?;
    let mut reader = input.reader;
    let n = match file {
        Some(file) => seal(client.encryptor(file, materials)?, &mut reader, m)?,
        None => seal(
            client.encryptor(output.writer(), materials)?,
            &mut reader,
            m,
        )?,
    };
    m.bytes = Some(n);
    output.commit(fsync)
}

/// Feed all of `reader` through `enc`; the plaintext bytes.
fn seal<W: Write>(
    mut enc: hyok::Encryptor<W>,
    reader: &mut (dyn Read + Send),
    m: &mut MessageEvent,
) -> Result<u64> {
    let h = enc.header();
    m.suite = Some(h.suite);
    m.message_id = Some(h.message_id.clone());
    m.context_sha256 = Some(context_hash(&h.context));
    enc.copy_from(reader).context("encrypting")?;
    let (_, n) = enc.finish().map_err(hyok::Error::from)?;
    Ok(n)
}

pub(crate) fn decrypt(config: Option<&Path>, a: DecryptArgs) -> Result<()> {
    let session = super::session(config, Some((&a.keys.select, &a.cache)))?;
    let started = Instant::now();
    let mut m = message_event(MessageOp::Decrypt);
    let result = decrypt_run(a, &session, &mut m);
    finish(session, m, started, result)
}

fn decrypt_run(a: DecryptArgs, session: &Session, m: &mut MessageEvent) -> Result<()> {
    let reproduced = context(&a.keys.context)?;
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
            ..DecryptOptions::default()
        },
        ..Settings::default()
    };
    let client = session.client(settings)?;
    m.keys = client
        .keys()
        .keyring()
        .keys()
        .iter()
        .map(|k| k.info().uri.clone())
        .collect();
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
    // A regular file as output: the decryptor reads the input straight into its buffers
    // and writes the plaintext out of them (no read-ahead or write-behind thread, no copy
    // in between). Otherwise (stdout, a FIFO or device) the output streams as before.
    if let Some(file) = output.file() {
        let mut file = file.context("opening the output")?;
        let mut reader = input.reader;
        let parsed = client.read_header(&mut reader)?;
        let verified = open_message(&client, session, &reproduced, parsed, &label, m)?;
        let mut dec = client.decryptor(verified, reader);
        let n = dec
            .write_to(&mut file)
            .map_err(|e| anyhow::Error::from(hyok::Error::from_stream(e)))?;
        m.bytes = Some(n);
        return output.commit(fsync);
    }
    let mut reader = ReadAhead::new(input.reader)?;
    let parsed = client.read_header(&mut reader)?;
    if let Some(gate) = output.gate() {
        gate.set_signed(parsed.header.suite.signature().is_some());
    }
    let verified = open_message(&client, session, &reproduced, parsed, &label, m)?;
    let mut dec = client.decryptor(verified, reader);
    let n = pump_buffered(&mut dec, output.writer())
        .map_err(|e| output.explain(hyok::Error::from_stream(e).into()))?;
    m.bytes = Some(n);
    drop(dec);
    output.commit(fsync)
}

/// The key step of a decrypt: record what the header says, unwrap the data key, verify the
/// header, and flush the audit log (fail closed: no plaintext leaves before the key use is
/// on disk).
fn open_message(
    client: &hyok::Client,
    session: &Session,
    reproduced: &EncryptionContext,
    parsed: hyok::ParsedHeader,
    label: &OpLabel,
    m: &mut MessageEvent,
) -> Result<hyok::VerifiedHeader> {
    let h = &parsed.header;
    m.suite = Some(h.suite);
    m.message_id = Some(h.message_id.clone());
    m.context_sha256 = Some(context_hash(&h.context));
    let rt = super::runtime()?;
    let verified = rt.block_on(client.open(parsed, reproduced, label))?;
    session.flush()?;
    Ok(verified)
}
