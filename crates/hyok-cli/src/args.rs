//! Command-line flags. Parsing only validates syntax; no files, HSMs or networks are
//! touched until a command runs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// hyok — hold your own key: client-side encryption with keys that never leave your
/// HSM, Vault/OpenBao or KMIP server. Messages use the AWS Encryption SDK format.
#[derive(Debug, Parser)]
#[command(name = "hyok", version, long_version = long_version(), propagate_version = true, max_term_width = 100)]
pub(crate) struct Cli {
    /// Configuration file (default: $HYOK_CONFIG, then ~/.config/hyok/hyok.toml).
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) config: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Encrypt a file or stdin into an ESDK message.
    Encrypt(EncryptArgs),
    /// Decrypt an ESDK message. An output file appears only after the whole message
    /// verified. On stdout (or a FIFO/device), an unsigned message's frames are written as
    /// each one verifies: if the message fails later (exit 1), a reader has seen a prefix
    /// of the real plaintext, never a forged or reordered byte. A signed message's
    /// plaintext is written only after its signature verified (see --unverified-stream).
    Decrypt(DecryptArgs),
    /// Show a message's header: suite, message id, context and wrapping keys (no secrets).
    Inspect(InspectArgs),
    /// Create and manage keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Tamper-evident audit log of every key use: checkpoint, verify, show. Logging is on
    /// when HYOK_AUDIT_LOG=PATH is set; checkpoints are signed with HYOK_AUDIT_KEY (a PEM
    /// EC private key path or a pkcs11: URI); HYOK_AUDIT_IDENTITY names who acts.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Serve an S3-compatible endpoint that stores every object as an ESDK message under
    /// the keys of each credential's keyring (the [gateway] section of the configuration).
    Gateway(GatewayArgs),
    /// Write a starter configuration: a new local AES-256 key and a local folder store.
    Init(InitArgs),
    /// Copy between local files and a store: uploads encrypt, downloads decrypt. Store
    /// locations are s3://BUCKET/KEY, file:///DIR/KEY, NAME:KEY (a configured store) or
    /// :KEY (the default store); anything else is a local path (`-` = stdin/stdout).
    Cp(CpArgs),
    /// Decrypt an object (or a byte range of it) to stdout. As `decrypt` on stdout: an
    /// unsigned object streams verified frames (on failure a reader has seen a prefix of
    /// the real plaintext); a signed one is written only after its signature verified.
    Cat(CatArgs),
    /// List encrypted objects under a location: name, plaintext size, suite, wrapping keys.
    Ls(LsArgs),
    /// Delete an object, or with -r everything under a prefix.
    Rm(RmArgs),
    /// Run an AWS KMS External Key Store (XKS) proxy over the keys of the configuration's
    /// [xks] section (see docs/XKS.md). Stops on Ctrl-C or SIGTERM; SIGHUP reloads the SigV4
    /// credentials.
    Xks(XksArgs),
    /// Branch keys: a key hierarchy under your master keys (docs/ROTATION.md). Data keys are
    /// wrapped under the active version of a branch key; the master keys (HSM, Vault, KMIP)
    /// wrap only the versions, so they are called once per version per process, not per
    /// object. Use one with `branch = "NAME"` in a [keyrings.NAME] section.
    #[command(subcommand)]
    Branch(BranchCommand),
    /// Re-encrypt the objects under a location to other keys (--to-key/--to-keyring), a new
    /// branch key version, another suite or frame length: each object becomes a new message
    /// with a new data key. An object replaces the old one only if that is unchanged (a
    /// concurrent writer wins, and is reported). Re-running continues where a stopped run
    /// left off: objects already on the target are skipped.
    Reencrypt(ReencryptArgs),
    /// What the [policy] files decide for a request, and why, without doing anything
    /// (see docs/POLICY.md).
    #[command(subcommand)]
    Policy(crate::cmd::policy::PolicyCommand),
}

#[derive(Debug, Args)]
pub(crate) struct XksArgs {
    /// Address to listen on, overriding [xks] listen (default 127.0.0.1:8443).
    #[arg(long, value_name = "ADDR:PORT")]
    pub(crate) listen: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// Replace an existing configuration file (the key file is never replaced).
    #[arg(long)]
    pub(crate) force: bool,
}

/// `hyok --version`: the version, then the crypto module and whether it runs in FIPS mode.
fn long_version() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| format!("{}\n{}", env!("CARGO_PKG_VERSION"), hyok::crypto_module()))
}

/// Which keys a command uses. Flattened into every command that takes keys, so `--key`,
/// `--keyring` and (with [`CacheArgs`]) the cache flags mean the same everywhere.
#[derive(Debug, Args)]
pub(crate) struct KeySelection {
    /// Wrapping key URI; repeat for several (the first generates data keys). Default: the
    /// keyring named by --keyring or [defaults] keyring in the configuration.
    #[arg(short, long = "key", value_name = "URI", long_help = key_help())]
    pub(crate) keys: Vec<String>,
    /// A keyring from the configuration file (its [keyrings.NAME.cache] section turns the
    /// data-key cache on unless --cache overrides it).
    #[arg(long, value_name = "NAME", conflicts_with = "keys")]
    pub(crate) keyring: Option<String>,
    /// k-of-n custody: split each data key so that any K of the --key keys are needed to
    /// decrypt (each --key is one group; groups of several keys: a keyring's `groups`).
    /// Decryption needs no flag: it takes any keys and says how many shares it has.
    #[arg(long, value_name = "K", requires = "keys",
          value_parser = clap::value_parser!(u64).range(2..=32))]
    pub(crate) threshold: Option<u64>,
}

impl KeySelection {
    /// The session's key source.
    pub(crate) fn source(&self) -> hyok::KeySource {
        match (&self.keyring, self.keys.is_empty()) {
            (Some(name), _) => hyok::KeySource::Keyring(name.clone()),
            (None, false) => match self.threshold {
                Some(k) => hyok::KeySource::Threshold {
                    threshold: k as usize,
                    keys: self.keys.clone(),
                },
                None => hyok::KeySource::Uris(self.keys.clone()),
            },
            (None, true) => hyok::KeySource::Default,
        }
    }
}

/// The long help of `--key`: every scheme of the registry.
fn key_help() -> String {
    format!(
        "Wrapping key URI; repeat for several (the first generates data keys). Default: the \
         keyring named by --keyring or [defaults] keyring in the configuration. Schemes: {}.",
        hyok::keys::Registry::builtin().help()
    )
}

#[derive(Debug, Args)]
pub(crate) struct StoreKeyArgs {
    #[command(flatten)]
    pub(crate) select: KeySelection,
    #[command(flatten)]
    pub(crate) cache: CacheArgs,
    /// Encryption context pair; repeat for several. On download, pairs the object must have.
    #[arg(short = 'c', long = "context", value_name = "KEY=VALUE", value_parser = parse_pair)]
    pub(crate) context: Vec<(String, String)>,
}

#[derive(Debug, Args)]
pub(crate) struct CpArgs {
    /// Source: a local file or folder, `-` for stdin, or a store location.
    #[arg(value_name = "SRC")]
    pub(crate) src: String,
    /// Destination: a store location, or a local file or folder, `-` for stdout.
    #[arg(value_name = "DST")]
    pub(crate) dst: String,
    #[command(flatten)]
    pub(crate) keys: StoreKeyArgs,
    /// Copy a folder or prefix: the contents of SRC go under DST (as `aws s3 cp --recursive`).
    #[arg(short, long)]
    pub(crate) recursive: bool,
    /// Download only plaintext bytes START-END (inclusive, from 0; `START-` to the end),
    /// fetching only the header and the frames that cover them.
    #[arg(long, value_name = "START-END", value_parser = parse_range)]
    pub(crate) range: Option<hyok::objects::ByteRange>,
    /// Overwrite existing local files, and copy even objects that are already identical.
    #[arg(short, long)]
    pub(crate) force: bool,
    /// Do not bind new objects to their bucket and key (their encryption context then lets
    /// them be moved or renamed and still decrypt); when reading, accept objects that are
    /// not bound to any location (a bound one must still be where it was bound to).
    #[arg(long)]
    pub(crate) no_bind_location: bool,
    /// Algorithm suite of new objects.
    #[arg(long, value_enum, default_value = "committed")]
    pub(crate) suite: SuiteArg,
    /// Plaintext bytes per frame of new objects.
    #[arg(long, value_name = "N", default_value_t = 65536,
          value_parser = clap::value_parser!(u32).range(1..=2147483647))]
    pub(crate) frame_length: u32,
    /// Objects copied at once by -r (default 8, or [transfer] jobs; at most 1024).
    #[arg(short, long, value_name = "N",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024))]
    pub(crate) jobs: Option<usize>,
    /// Parts or ranged GETs in flight at once (default 8, or [transfer] concurrency; at
    /// most 1024).
    #[arg(long, value_name = "N",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024))]
    pub(crate) concurrency: Option<usize>,
    /// Multipart part size in MiB (default 8, minimum 5, or [transfer] part_size_mib; at
    /// most 5120, S3's largest part).
    #[arg(long, value_name = "MIB",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=5120))]
    pub(crate) part_size: Option<usize>,
    /// No progress bar.
    #[arg(short, long)]
    pub(crate) quiet: bool,
    /// Flush each downloaded file to disk (fsync) before it appears under its name. Without
    /// it a file still appears only complete and verified, but a power loss right after
    /// may lose it (as with `aws s3 cp` and rclone).
    #[arg(long)]
    pub(crate) fsync: bool,
    #[command(flatten)]
    pub(crate) release: ReleaseArgs,
}

#[derive(Debug, Args)]
pub(crate) struct CatArgs {
    /// The object.
    #[arg(value_name = "LOCATION")]
    pub(crate) src: String,
    #[command(flatten)]
    pub(crate) keys: StoreKeyArgs,
    /// Only plaintext bytes START-END (inclusive, from 0; `START-` to the end).
    #[arg(long, value_name = "START-END", value_parser = parse_range)]
    pub(crate) range: Option<hyok::objects::ByteRange>,
    #[command(flatten)]
    pub(crate) release: ReleaseArgs,
}

#[derive(Debug, Args)]
pub(crate) struct LsArgs {
    /// A prefix (folder) or object location.
    #[arg(value_name = "LOCATION")]
    pub(crate) location: String,
    /// Also show stored size, modification time and encryption context (reads each header).
    #[arg(short, long)]
    pub(crate) long: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RmArgs {
    /// The object, or with -r the prefix.
    #[arg(value_name = "LOCATION")]
    pub(crate) location: String,
    /// Delete every object under the prefix.
    #[arg(short, long)]
    pub(crate) recursive: bool,
    /// Do not ask for confirmation of -r (needed when stdin is not a terminal).
    #[arg(short, long)]
    pub(crate) yes: bool,
}

fn parse_range(s: &str) -> Result<hyok::objects::ByteRange, String> {
    s.parse()
}

#[derive(Debug, Args)]
pub(crate) struct IoArgs {
    /// Input file; `-` or absent for stdin.
    #[arg(value_name = "IN")]
    pub(crate) input: Option<PathBuf>,
    /// Output file; `-` or absent for stdout. A regular file is written to an unnamed
    /// temporary file beside it that gets its name only on success (nothing is left behind
    /// on failure or SIGINT/SIGTERM/SIGHUP). An existing FIFO, device or socket is written
    /// into, never replaced.
    #[arg(short, long, value_name = "OUT")]
    pub(crate) output: Option<PathBuf>,
    /// Replace an existing regular output file (special files are written into, never
    /// replaced).
    #[arg(short, long)]
    pub(crate) force: bool,
    /// Flush the output file to disk (fsync) before it appears under its name. Without it
    /// the file still appears only complete, but a power loss in the next seconds may lose
    /// it (as with cp, age or gpg): use it before deleting the input.
    #[arg(long)]
    pub(crate) fsync: bool,
}

#[derive(Debug, Args)]
pub(crate) struct KeyArgs {
    #[command(flatten)]
    pub(crate) select: KeySelection,
    /// Encryption context pair; repeat for several.
    #[arg(short = 'c', long = "context", value_name = "KEY=VALUE", value_parser = parse_pair)]
    pub(crate) context: Vec<(String, String)>,
    /// Worker threads for frame crypto (default: all cores; at most 4 × cores).
    #[arg(long, value_name = "N")]
    pub(crate) threads: Option<usize>,
}

/// Message suites hyok writes.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum SuiteArg {
    /// 0x0478: AES-256-GCM, HKDF-SHA512, key commitment.
    Committed,
    /// 0x0578: as committed, plus an ECDSA P-384 signature.
    CommittedSigned,
}

/// The data-key cache (off unless `--cache`). Flatten it into any command that handles
/// messages.
#[derive(Clone, Debug, Args)]
pub(crate) struct CacheArgs {
    /// Reuse data keys across the messages this process handles, within the bounds below,
    /// instead of asking the key store (HSM, KMS) for every message. Each message still gets
    /// its own derived key; every reuse is audited. A single `encrypt`/`decrypt` handles one
    /// message, so it gains nothing; commands that handle many messages do. Overrides a
    /// keyring's [keyrings.NAME.cache] section.
    #[arg(long, help_heading = "Data-key cache")]
    pub(crate) cache: bool,
    /// Reuse a data key for at most this long (e.g. 90s, 5m, 1h) [default: 5m].
    #[arg(long, value_name = "DURATION", requires = "cache", help_heading = "Data-key cache",
          value_parser = parse_duration)]
    pub(crate) cache_max_age: Option<std::time::Duration>,
    /// Encrypt at most this many messages with one data key [default: 1000].
    #[arg(long, value_name = "N", requires = "cache", help_heading = "Data-key cache",
          value_parser = clap::value_parser!(u64).range(1..=4294967296))]
    pub(crate) cache_max_messages: Option<u64>,
    /// Encrypt at most this many plaintext bytes with one data key (e.g. 64MiB) [default: 1GiB].
    #[arg(long, value_name = "BYTES", requires = "cache", help_heading = "Data-key cache",
          value_parser = parse_bytes)]
    pub(crate) cache_max_bytes: Option<u64>,
    /// Hold at most this many data keys at once [default: 64].
    #[arg(long, value_name = "N", requires = "cache", help_heading = "Data-key cache",
          value_parser = clap::value_parser!(u64).range(1..=1000000))]
    pub(crate) cache_max_entries: Option<u64>,
}

impl CacheArgs {
    /// The session's cache choice: `--cache` overrides the keyring's own setting.
    pub(crate) fn choice(&self) -> hyok::CacheChoice {
        match self.limits() {
            Some(l) => hyok::CacheChoice::On(l),
            None => hyok::CacheChoice::Keyring,
        }
    }

    /// The limits, when the cache is on.
    pub(crate) fn limits(&self) -> Option<hyok::cache::CacheLimits> {
        if !self.cache {
            return None;
        }
        let d = hyok::cache::CacheLimits::default();
        Some(hyok::cache::CacheLimits {
            max_age: self.cache_max_age.unwrap_or(d.max_age),
            max_messages: self.cache_max_messages.unwrap_or(d.max_messages),
            max_bytes: self.cache_max_bytes.unwrap_or(d.max_bytes),
            max_entries: self
                .cache_max_entries
                .map_or(d.max_entries, |n| usize::try_from(n).unwrap_or(usize::MAX)),
        })
    }
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let d = hyok::cache::parse_duration(s)?;
    if d.is_zero() {
        return Err("must be more than 0".into());
    }
    Ok(d)
}

fn parse_bytes(s: &str) -> Result<u64, String> {
    match hyok::cache::parse_bytes(s)? {
        0 => Err("must be more than 0".into()),
        n => Ok(n),
    }
}

#[derive(Debug, Args)]
pub(crate) struct EncryptArgs {
    #[command(flatten)]
    pub(crate) io: IoArgs,
    #[command(flatten)]
    pub(crate) keys: KeyArgs,
    #[command(flatten)]
    pub(crate) cache: CacheArgs,
    /// Context keys to authenticate without storing them in the message; the reader must
    /// pass them again with -c.
    #[arg(long = "required-context", value_name = "KEY")]
    pub(crate) required: Vec<String>,
    /// Algorithm suite.
    #[arg(long, value_enum, default_value = "committed")]
    pub(crate) suite: SuiteArg,
    /// Plaintext bytes per frame (1 to 2147483647).
    #[arg(long, value_name = "N", default_value_t = 65536,
          value_parser = clap::value_parser!(u32).range(1..=2147483647))]
    pub(crate) frame_length: u32,
}

/// How plaintext of signed messages reaches stdout or a FIFO/device.
#[derive(Clone, Copy, Debug, Args)]
pub(crate) struct ReleaseArgs {
    /// Write the plaintext of signed messages to stdout (or a FIFO/device) as it is
    /// decrypted, BEFORE the signature is checked: a reader may act on plaintext of a
    /// forged message that fails at the end. Without it, such plaintext is held in a
    /// private temporary file (no name, mode 0600, in $TMPDIR) and written only after the
    /// signature verified.
    #[arg(long, help_heading = "Output of signed messages")]
    pub(crate) unverified_stream: bool,
    /// Hold back at most this much plaintext of a signed message for stdout or a
    /// FIFO/device (e.g. 512MiB); a larger message is refused (output to a regular file has
    /// no limit).
    #[arg(long, value_name = "BYTES", default_value = "1GiB", value_parser = parse_bytes,
          help_heading = "Output of signed messages")]
    pub(crate) spool_limit: u64,
}

impl ReleaseArgs {
    pub(crate) fn release(&self) -> crate::stream::Release {
        crate::stream::Release {
            unverified_stream: self.unverified_stream,
            spool_limit: self.spool_limit,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct DecryptArgs {
    #[command(flatten)]
    pub(crate) io: IoArgs,
    #[command(flatten)]
    pub(crate) keys: KeyArgs,
    #[command(flatten)]
    pub(crate) cache: CacheArgs,
    #[command(flatten)]
    pub(crate) release: ReleaseArgs,
    /// Refuse messages whose frame length is larger (bytes, at most 2147483647, the
    /// format's bound). About two frames are held in memory, so this bounds memory whatever
    /// a hostile header says; it also bounds a non-framed (legacy) body.
    #[arg(long, value_name = "BYTES", default_value_t = hyok::DEFAULT_MAX_READ_FRAME_LEN,
          value_parser = clap::value_parser!(u32).range(1..=2147483647))]
    pub(crate) max_frame_length: u32,
    /// Also accept legacy messages whose suite does not commit to its key (message format
    /// 1); the default refuses them.
    #[arg(long)]
    pub(crate) allow_legacy: bool,
    /// Refuse messages with more wrapped data keys than this.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub(crate) max_edks: usize,
}

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// Message file; `-` or absent for stdin.
    #[arg(value_name = "IN")]
    pub(crate) input: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Create a new key: `aes-256` writes a raw key file (mode 0600); `rsa-3072` writes
    /// NAME.pem (private, 0600) and NAME.pub.pem (public). With a key store URI
    /// (`pkcs11:…`, `vault-transit:…`, `kmip://…`) the key is generated inside the store.
    New(KeyNewArgs),
    /// List the keys of a key store (no key material).
    List(KeyUriArgs),
    /// Create a new version of a key (stores with versioned keys).
    Rotate(KeyUriArgs),
    /// Destroy a key for good. Every message that only this key wraps becomes unreadable.
    Destroy(KeyDestroyArgs),
    /// Probe every server node behind a key (or behind each key of the configured keyring):
    /// reachable, active or standby, latency, circuit-breaker state. Exit status 1 when a key
    /// has no node that serves.
    Health(KeyHealthArgs),
    /// Escrow drill: prove that the given keys (e.g. the offline escrow key, or a quorum of
    /// k-of-n groups) open the data key of every object at a location, or of a random
    /// sample. Reads headers only: no payload is decrypted, nothing is written. One line per
    /// object; every check is audit-logged; exit 1 unless every object opens.
    VerifyEscrow(VerifyEscrowArgs),
}

#[derive(Debug, Args)]
pub(crate) struct KeyHealthArgs {
    /// Key URI (e.g. `vault-transit:NAME?addr=https://A:8200,https://B:8200`); without it,
    /// the keys of the configuration (`hyok.toml`, `HYOK_KEY`).
    #[arg(value_name = "URI")]
    pub(crate) uri: Option<String>,
    /// Print one JSON object per key instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyEscrowArgs {
    /// An object, or a prefix (folder) whose objects are all checked.
    #[arg(value_name = "LOCATION")]
    pub(crate) location: String,
    #[command(flatten)]
    pub(crate) keys: StoreKeyArgs,
    /// Check a uniformly random sample of N objects of the prefix instead of all.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1000000))]
    pub(crate) sample: Option<u64>,
    /// Print only objects the keys do not open, and the summary.
    #[arg(short, long)]
    pub(crate) quiet: bool,
}

#[derive(Debug, Args)]
pub(crate) struct KeyUriArgs {
    /// Key store or key URI.
    #[arg(value_name = "URI")]
    pub(crate) uri: String,
}

#[derive(Debug, Args)]
pub(crate) struct KeyDestroyArgs {
    /// Key URI.
    #[arg(value_name = "URI")]
    pub(crate) uri: String,
    /// Confirm: data encrypted only under this key can never be decrypted again.
    #[arg(long)]
    pub(crate) yes: bool,
    /// Before destroying, list the objects under LOCATION that only this key opens; refuse
    /// if there are any (unless --yes); afterwards check that they no longer decrypt.
    #[arg(long, value_name = "LOCATION")]
    pub(crate) check: Option<String>,
}

/// Kinds of key `key new` creates.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum KeyKind {
    /// 32-byte AES key.
    #[value(name = "aes-256")]
    Aes256,
    /// 3072-bit RSA key pair.
    #[value(name = "rsa-3072")]
    Rsa3072,
    /// 4096-bit RSA key pair.
    #[value(name = "rsa-4096")]
    Rsa4096,
    /// ECDSA P-256 key pair (audit checkpoint signing).
    #[value(name = "ec-p256")]
    EcP256,
    /// ECDSA P-384 key pair (audit checkpoint signing).
    #[value(name = "ec-p384")]
    EcP384,
    /// Post-quantum escrow key pair: X-Wing (ML-KEM-768 + X25519). Writes NAME.key
    /// (private, 0600) and NAME.pub, for `pq-escrow:NS/NAME?public=NAME.pub` (encrypt) and
    /// `?private=NAME.key` (decrypt).
    #[value(name = "mlkem768-x25519")]
    Mlkem768X25519,
}

#[derive(Debug, Args)]
pub(crate) struct KeyNewArgs {
    /// Kind of key.
    #[arg(value_enum)]
    pub(crate) kind: KeyKind,
    /// Where to create it: a file path (aes-256), a name prefix (rsa-*), or a key store URI
    /// such as `pkcs11:token=LABEL;object=NAME` (the key is generated inside the token:
    /// sensitive, never extractable).
    #[arg(short, long, value_name = "TARGET")]
    pub(crate) output: String,
}

#[derive(Debug, Args)]
pub(crate) struct GatewayArgs {
    /// Address to listen on, ADDR:PORT (default: [gateway] listen, else 127.0.0.1:7070).
    #[arg(long, value_name = "ADDR:PORT")]
    pub(crate) listen: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Sign a checkpoint of the log now and print it as one JSON line. Keep it: later,
    /// `verify --trusted-checkpoint` proves the log was not cut or rewritten below it.
    Checkpoint(AuditCheckpointArgs),
    /// Verify a log offline: every record against the hash chain and Merkle tree, every
    /// checkpoint signature. Names the first line that does not hold and exits 1.
    Verify(AuditVerifyArgs),
    /// Print the records of a log, optionally filtered (--json: the logged lines as they
    /// are, for a SIEM).
    Show(AuditShowArgs),
    /// Print the public key (PEM) of the checkpoint signing key HYOK_AUDIT_KEY, for
    /// auditors.
    PublicKey,
}

#[derive(Debug, Args)]
pub(crate) struct AuditCheckpointArgs {
    /// The log (default: $HYOK_AUDIT_LOG).
    #[arg(value_name = "PATH")]
    pub(crate) log: Option<PathBuf>,
    /// Also write the checkpoint to this new file.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct AuditVerifyArgs {
    /// The log file.
    #[arg(value_name = "PATH")]
    pub(crate) log: PathBuf,
    /// PEM public key of the checkpoint signer; repeat for several (after a key change).
    #[arg(long = "public-key", value_name = "PEM", required = true)]
    pub(crate) public_keys: Vec<PathBuf>,
    /// A checkpoint kept earlier (`hyok audit checkpoint` output): the log must still
    /// contain exactly the records it signed.
    #[arg(long, value_name = "FILE")]
    pub(crate) trusted_checkpoint: Option<PathBuf>,
    /// Accept records after the last checkpoint (no signature covers them; by default
    /// they fail verification): a writer crashed mid-append or could not sign.
    #[arg(long)]
    pub(crate) allow_unsigned_tail: bool,
}

/// `--since`: an RFC 3339 time or date, or an age (`30m`, `12h`, `7d`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Since {
    At(hyok::audit::Timestamp),
    Ago(std::time::Duration),
}

fn parse_since(s: &str) -> Result<Since, String> {
    if let Some(t) = hyok::audit::Timestamp::parse(s) {
        return Ok(Since::At(t));
    }
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    match num.parse::<u64>() {
        Ok(n) if secs > 0 => Ok(Since::Ago(std::time::Duration::from_secs(
            n.saturating_mul(secs),
        ))),
        _ => Err(format!(
            "{s:?} is neither an RFC 3339 time (2026-05-04T12:00:00Z), a date (2026-05-04) nor an age (30m, 12h, 7d)"
        )),
    }
}

fn parse_op(s: &str) -> Result<hyok::audit::OpFilter, String> {
    s.parse()
}

#[derive(Debug, Args)]
pub(crate) struct AuditShowArgs {
    /// The log file.
    #[arg(value_name = "PATH")]
    pub(crate) log: PathBuf,
    /// Only records of this key (a key URI or its beginning).
    #[arg(long, value_name = "URI")]
    pub(crate) key: Option<String>,
    /// Only this operation: generate, wrap, unwrap, cache-hit-encrypt, cache-hit-decrypt,
    /// encrypt, decrypt, key-new, key-rotate, key-destroy, policy-refusal, torn-tail;
    /// or cache-hit, key-use.
    #[arg(long, value_name = "OP", value_parser = parse_op)]
    pub(crate) op: Option<hyok::audit::OpFilter>,
    /// Only records at or after this time: RFC 3339, a date, or an age (30m, 12h, 7d).
    #[arg(long, value_name = "TIME", value_parser = parse_since)]
    pub(crate) since: Option<Since>,
    /// Print the matching lines exactly as logged (JSON, one per line).
    #[arg(long)]
    pub(crate) json: bool,
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum BranchCommand {
    /// Create branch key NAME with its first version, wrapped by the --key/--keyring keys
    /// (the master keys; several for escrow).
    New(BranchKeysArgs),
    /// Add a new active version to NAME (new objects use it; old versions keep opening
    /// old objects). Wrapped by the --key/--keyring keys.
    Rotate(BranchKeysArgs),
    /// List the branch keys of the store, or with NAME its versions.
    List(BranchListArgs),
    /// Show NAME: its versions, which is active, and which master keys wrap each.
    Show(BranchNameArgs),
    /// Master key rotation: re-wrap every version of NAME from the --key/--keyring keys to
    /// the --to-key keys. No object is read or written; afterwards the old master keys can
    /// be destroyed.
    Rewrap(BranchRewrapArgs),
    /// Destroy one version of NAME (crypto-shredding): every object wrapped only under it
    /// becomes unreadable. The active version cannot be destroyed (rotate first).
    Destroy(BranchDestroyArgs),
}

/// Where the branch key store is.
#[derive(Debug, Args)]
pub(crate) struct BranchStoreArg {
    /// The branch key store: a directory, or s3://BUCKET/[PREFIX/] to keep it in the bucket
    /// under PREFIX/.hyok/branches/ (default: the --keyring's branch_store, else
    /// $HYOK_BRANCH_STORE, else ~/.local/share/hyok/branches).
    #[arg(long, value_name = "DIR|URL")]
    pub(crate) branch_store: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct BranchKeysArgs {
    /// Branch key name (1-128 of A-Z a-z 0-9 . _ -).
    #[arg(value_name = "NAME")]
    pub(crate) name: String,
    #[command(flatten)]
    pub(crate) select: KeySelection,
    #[command(flatten)]
    pub(crate) store: BranchStoreArg,
}

#[derive(Debug, Args)]
pub(crate) struct BranchListArgs {
    /// A branch key: list its versions.
    #[arg(value_name = "NAME")]
    pub(crate) name: Option<String>,
    /// A keyring of the configuration whose branch_store to use.
    #[arg(long, value_name = "NAME")]
    pub(crate) keyring: Option<String>,
    #[command(flatten)]
    pub(crate) store: BranchStoreArg,
}

#[derive(Debug, Args)]
pub(crate) struct BranchNameArgs {
    /// Branch key name.
    #[arg(value_name = "NAME")]
    pub(crate) name: String,
    /// A keyring of the configuration whose branch_store to use.
    #[arg(long, value_name = "NAME")]
    pub(crate) keyring: Option<String>,
    #[command(flatten)]
    pub(crate) store: BranchStoreArg,
}

#[derive(Debug, Args)]
pub(crate) struct BranchRewrapArgs {
    /// Branch key name.
    #[arg(value_name = "NAME")]
    pub(crate) name: String,
    /// The master keys that wrap the versions now.
    #[command(flatten)]
    pub(crate) select: KeySelection,
    /// New master key URI; repeat for several.
    #[arg(long = "to-key", value_name = "URI", required = true)]
    pub(crate) to_keys: Vec<String>,
    #[command(flatten)]
    pub(crate) store: BranchStoreArg,
}

#[derive(Debug, Args)]
pub(crate) struct BranchDestroyArgs {
    /// Branch key name.
    #[arg(value_name = "NAME")]
    pub(crate) name: String,
    /// The version to destroy (its id, as `hyok branch show` prints it).
    #[arg(value_name = "VERSION")]
    pub(crate) version: String,
    /// Before destroying, list the objects under LOCATION that only this version opens;
    /// refuse if there are any (unless --yes); afterwards check that they no longer decrypt.
    #[arg(long, value_name = "LOCATION")]
    pub(crate) check: Option<String>,
    /// Confirm: objects wrapped only under this version can never be decrypted again.
    #[arg(long)]
    pub(crate) yes: bool,
    /// The keyring (with `branch = NAME`) used by --check to try the objects afterwards.
    #[arg(long, value_name = "NAME")]
    pub(crate) keyring: Option<String>,
    #[command(flatten)]
    pub(crate) store: BranchStoreArg,
}

#[derive(Debug, Args)]
pub(crate) struct ReencryptArgs {
    /// The objects: a prefix (folder) or one object.
    #[arg(value_name = "LOCATION")]
    pub(crate) location: String,
    /// The keys that open the objects now (--key URI…, --keyring NAME, cache flags, -c).
    #[command(flatten)]
    pub(crate) keys: StoreKeyArgs,
    /// New wrapping key URI; repeat for several (the first generates data keys).
    #[arg(long = "to-key", value_name = "URI", conflicts_with = "to_keyring")]
    pub(crate) to_keys: Vec<String>,
    /// A keyring of the configuration to move to (may be a `branch =` keyring).
    #[arg(long, value_name = "NAME")]
    pub(crate) to_keyring: Option<String>,
    /// Print the inventory (objects and bytes per wrapping keys, branch version and suite)
    /// and what would be re-encrypted; change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Only objects with a wrapping key whose label (`PROVIDER/KEY`, as `hyok ls` shows it)
    /// starts with this; repeat for several.
    #[arg(long = "only-key", value_name = "LABEL")]
    pub(crate) only_keys: Vec<String>,
    /// Only objects under this branch key version; repeat for several.
    #[arg(long = "only-version", value_name = "VERSION")]
    pub(crate) only_versions: Vec<String>,
    /// Only objects of this suite (hex id such as 0x0478 or 0x0178); repeat for several.
    #[arg(long = "only-suite", value_name = "ID")]
    pub(crate) only_suites: Vec<String>,
    /// Re-encrypt objects even if they already are on the target keys and settings.
    #[arg(long)]
    pub(crate) force: bool,
    /// Work on shard I of N only (0 <= I < N): objects are split by a stable hash of their
    /// key, so N workers (e.g. a Kubernetes Indexed Job) share a keyspace.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub(crate) shard: Option<(u64, u64)>,
    /// Start at most this many objects per second (over all jobs).
    #[arg(long, value_name = "N")]
    pub(crate) rate: Option<f64>,
    /// Make at most this many key-store calls per second (generate, wrap, unwrap; old and
    /// new keys together, over all jobs; cache hits and local branch-key wraps are free).
    #[arg(long, value_name = "N")]
    pub(crate) key_rate: Option<f64>,
    /// Objects re-encrypted at once (default 8, or [transfer] jobs; at most 1024).
    #[arg(short, long, value_name = "N",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024))]
    pub(crate) jobs: Option<usize>,
    /// Also read legacy messages (message format 1, suites without key commitment); they
    /// are rewritten in format 2 with key commitment.
    #[arg(long)]
    pub(crate) allow_legacy: bool,
    /// Accept objects bound to no location (and keep them unbound).
    #[arg(long)]
    pub(crate) no_bind_location: bool,
    /// Algorithm suite of the new messages.
    #[arg(long, value_enum, default_value = "committed")]
    pub(crate) suite: SuiteArg,
    /// Plaintext bytes per frame of the new messages (default 65536); when given, objects
    /// with another frame length count as not yet on the target.
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=2147483647))]
    pub(crate) frame_length: Option<u32>,
    /// No progress bar.
    #[arg(short, long)]
    pub(crate) quiet: bool,
}

fn parse_shard(s: &str) -> Result<(u64, u64), String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("expected I/N (e.g. 0/4), got {s:?}"))?;
    let i: u64 = i
        .parse()
        .map_err(|_| format!("shard {i:?} is not a number"))?;
    let n: u64 = n
        .parse()
        .map_err(|_| format!("shard count {n:?} is not a number"))?;
    if n == 0 || n > 1_000_000 || i >= n {
        return Err(format!("shard {i}/{n}: need 0 <= I < N <= 1000000"));
    }
    Ok((i, n))
}
