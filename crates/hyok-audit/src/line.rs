//! The log's lines: records and checkpoints, one JSON object per line.
//!
//! Every record carries `seq` (its index) and `prev`, the [`line_hash`] of the record
//! before it (all zeros for the first), so a changed, missing, extra or moved record is
//! found where the chain or the numbering breaks. Record lines are the leaves of the
//! Merkle tree; checkpoint lines sign its root. Lines are hashed exactly as stored, never
//! re-serialized.

use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::merkle::{self, Hash};
use crate::sign::{CheckpointSigner, CheckpointVerifier, KeyId, SignatureAlgorithm};
use crate::time::Timestamp;

/// Longest line the parser accepts (bytes, without the newline).
pub const MAX_LINE: usize = 64 * 1024;

/// Longest text field the writer stores (subjects, details); longer ones are cut.
pub const MAX_FIELD: usize = 4096;

/// Hash of one stored line (without its newline): the RFC 6962 leaf hash
/// `SHA-256(0x00 ‖ line)`. For records this is their Merkle leaf.
pub fn line_hash(line: &[u8]) -> Hash {
    merkle::leaf_hash(line)
}

/// A SHA-256 value written as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Hex32(pub Hash);

impl fmt::Debug for Hex32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Display for Hex32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl Serialize for Hex32 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 64];
        // Cannot fail: the buffer is exactly twice the input length.
        let _ = hex::encode_to_slice(self.0, &mut buf);
        s.serialize_str(std::str::from_utf8(&buf).unwrap_or_default())
    }
}

impl<'de> Deserialize<'de> for Hex32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let mut h = [0u8; 32];
        hex::decode_to_slice(s.as_bytes(), &mut h)
            .map_err(|_| serde::de::Error::custom("expected 64 hex digits"))?;
        Ok(Self(h))
    }
}

/// Bytes written as hex (message ids).
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct HexBytes(pub Vec<u8>);

impl fmt::Debug for HexBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

impl Serialize for HexBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for HexBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if s.len() > 512 {
            return Err(serde::de::Error::custom("hex field too long"));
        }
        hex::decode(s.as_bytes())
            .map(Self)
            .map_err(|_| serde::de::Error::custom("expected hex digits"))
    }
}

/// Signature bytes written as base64.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Base64(pub Vec<u8>);

impl fmt::Debug for Base64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl Serialize for Base64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Base64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if s.len() > 1024 {
            return Err(serde::de::Error::custom("signature too long"));
        }
        base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .map(Self)
            .map_err(|_| serde::de::Error::custom("expected base64"))
    }
}

/// What a record records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    /// A key store generated and wrapped a data key.
    Generate,
    /// A key store wrapped an existing data key (extra keys of a keyring).
    Wrap,
    /// A key store unwrapped a data key.
    Unwrap,
    /// Encryption materials served from the data-key cache.
    CacheHitEncrypt,
    /// A data key for decryption served from the cache.
    CacheHitDecrypt,
    /// One message encrypted (or a failed attempt).
    Encrypt,
    /// One message decrypted (or a failed attempt).
    Decrypt,
    /// A key created.
    KeyNew,
    /// A new key version.
    KeyRotate,
    /// A key destroyed.
    KeyDestroy,
    /// A policy refused an operation.
    PolicyRefusal,
    /// A decision of the policy engine (allow or deny, deciding policy ids in the detail).
    PolicyDecision,
    /// The writer found an interrupted append (a line without newline) and kept it.
    TornTail,
    /// The escrow drill checked whether given keys open one message.
    EscrowCheck,
    /// A request to a hyok server that used no key (XKS metadata and health requests,
    /// requests refused before reaching a key).
    ServiceRequest,
}

impl Op {
    /// Every operation, in declaration order.
    pub const ALL: [Self; 15] = [
        Self::Generate,
        Self::Wrap,
        Self::Unwrap,
        Self::CacheHitEncrypt,
        Self::CacheHitDecrypt,
        Self::Encrypt,
        Self::Decrypt,
        Self::KeyNew,
        Self::KeyRotate,
        Self::KeyDestroy,
        Self::PolicyRefusal,
        Self::TornTail,
        Self::EscrowCheck,
        Self::PolicyDecision,
        Self::ServiceRequest,
    ];

    /// Stable name as written in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generate => "generate",
            Self::Wrap => "wrap",
            Self::Unwrap => "unwrap",
            Self::CacheHitEncrypt => "cache-hit-encrypt",
            Self::CacheHitDecrypt => "cache-hit-decrypt",
            Self::Encrypt => "encrypt",
            Self::Decrypt => "decrypt",
            Self::KeyNew => "key-new",
            Self::KeyRotate => "key-rotate",
            Self::KeyDestroy => "key-destroy",
            Self::PolicyRefusal => "policy-refusal",
            Self::TornTail => "torn-tail",
            Self::EscrowCheck => "escrow-check",
            Self::PolicyDecision => "policy-decision",
            Self::ServiceRequest => "service-request",
        }
    }

    /// Whether this is a use of a key (store call or cache hit).
    pub fn is_key_use(self) -> bool {
        matches!(
            self,
            Self::Generate
                | Self::Wrap
                | Self::Unwrap
                | Self::CacheHitEncrypt
                | Self::CacheHitDecrypt
        )
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Result of the recorded operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// It succeeded.
    Ok,
    /// It failed; the record's `error` names the class.
    Error,
}

/// One record: one key use, one message, one key lifecycle step or policy refusal.
///
/// Holds names and hashes only: key URIs without secrets, SHA-256 of the encryption
/// context and of the EDK, the message id. Never key material, plaintext, PINs or tokens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Position in the log: the Merkle leaf index (0, 1, 2 …).
    pub seq: u64,
    /// When the operation ended.
    pub time: Timestamp,
    /// The operation.
    pub op: Op,
    /// Success or failure.
    pub outcome: Outcome,
    /// Error class on failure (`unwrap-failed`, `unavailable`, `format` …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The key used (URI without secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Keys configured for a message operation, generator first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// Key store backend (`raw-aes`, `pkcs11` …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Algorithm suite id, e.g. `0x0478`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite: Option<String>,
    /// SHA-256 of the serialized encryption context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctx_sha256: Option<Hex32>,
    /// SHA-256 of the EDK (provider id, info and ciphertext, each length-prefixed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edk_sha256: Option<Hex32>,
    /// The message id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<HexBytes>,
    /// File or object name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Plaintext bytes of a message operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Free text without secrets (key kind, refused policy, recovered torn append …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Byte offset of the interrupted append a `torn-tail` record recovers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torn_offset: Option<u64>,
    /// Length of that interrupted append.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torn_len: Option<u64>,
    /// [`line_hash`] of that interrupted append (so its bytes are committed to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torn_sha256: Option<Hex32>,
    /// Time spent, in microseconds.
    pub duration_us: u64,
    /// Host name.
    pub host: String,
    /// OS user name (or `uid:N` when it has none).
    pub user: String,
    /// OS user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Process id.
    pub pid: u32,
    /// Configured identity (`HYOK_AUDIT_IDENTITY`), e.g. a service account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// [`line_hash`] of the previous record (zeros for the first).
    pub prev: Hex32,
}

/// A signed statement about the log: "the first `size` records have Merkle root `root`",
/// at `time`, by the key `key_id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Name of the log (same for every writer of one log).
    pub origin: String,
    /// Number of records covered.
    pub size: u64,
    /// Merkle root of those records.
    pub root: Hex32,
    /// When it was signed.
    pub time: Timestamp,
    /// Signature algorithm.
    pub alg: SignatureAlgorithm,
    /// Which key signed.
    pub key_id: KeyId,
    /// ECDSA signature (`r ‖ s`) over [`Checkpoint::signed_text`].
    pub sig: Base64,
    /// The Merkle frontier at `size` (not signed; checked against `root`). Lets a writer
    /// resume the tree without reading the whole log. Absent in exported checkpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontier: Option<Vec<Hex32>>,
    /// [`line_hash`] of the last record covered (not signed; absent in exported
    /// checkpoints): lets a writer continue the record chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_leaf: Option<Hex32>,
}

/// First line of the signed text; changes with any change of its layout.
pub const CHECKPOINT_HEADER: &str = "hyok audit checkpoint v1";

impl Checkpoint {
    /// The exact bytes signed: five lines, `\n`-terminated: the header, origin, size
    /// (decimal), root (hex), time (RFC 3339).
    pub fn signed_text(origin: &str, size: u64, root: &Hash, time: Timestamp) -> Vec<u8> {
        format!(
            "{CHECKPOINT_HEADER}\n{origin}\n{size}\n{}\n{time}\n",
            hex::encode(root)
        )
        .into_bytes()
    }

    /// Sign a new checkpoint of the tree of `size` records with `root`.
    pub fn sign(
        signer: &dyn CheckpointSigner,
        origin: &str,
        size: u64,
        root: Hash,
        time: Timestamp,
    ) -> crate::Result<Self> {
        let sig = signer.sign(&Self::signed_text(origin, size, &root, time))?;
        if sig.len() != signer.algorithm().signature_len() {
            return Err(crate::Error::Sign(format!(
                "the signer returned {} bytes, {} expects {}",
                sig.len(),
                signer.algorithm(),
                signer.algorithm().signature_len()
            )));
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root: Hex32(root),
            time,
            alg: signer.algorithm(),
            key_id: signer.key_id(),
            sig: Base64(sig),
            frontier: None,
            last_leaf: None,
        })
    }

    /// Check the signature with whichever of `keys` has this checkpoint's key id.
    pub fn verify(&self, keys: &[&dyn CheckpointVerifier]) -> Result<(), String> {
        let Some(key) = keys.iter().find(|k| k.key_id() == self.key_id) else {
            let known: Vec<String> = keys.iter().map(|k| k.key_id().to_string()).collect();
            return Err(format!(
                "signed by key {}, which is not among the given public keys ({})",
                self.key_id,
                known.join(", ")
            ));
        };
        if key.algorithm() != self.alg {
            return Err(format!(
                "says {} but key {} is {}",
                self.alg,
                self.key_id,
                key.algorithm()
            ));
        }
        let text = Self::signed_text(&self.origin, self.size, &self.root.0, self.time);
        if key.verify(&text, &self.sig.0) {
            Ok(())
        } else {
            Err(format!(
                "signature does not verify with public key {}",
                self.key_id
            ))
        }
    }

    /// This checkpoint without the log-internal fields (what `hyok audit checkpoint`
    /// prints and auditors keep).
    pub fn exported(&self) -> Self {
        Self {
            frontier: None,
            last_leaf: None,
            ..self.clone()
        }
    }

    /// One JSON line (no newline) of the exported form.
    pub fn to_json(&self) -> String {
        // Serializing this struct cannot fail (no maps with non-string keys, no I/O).
        serde_json::to_string(&Line::Checkpoint(self.exported())).unwrap_or_default()
    }

    /// Parse a checkpoint kept by an auditor (one JSON line, as printed by
    /// `hyok audit checkpoint`; a checkpoint line copied from the log works too).
    pub fn from_json(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.len() > MAX_LINE {
            return Err(format!("longer than {MAX_LINE} bytes"));
        }
        match parse_line(text.as_bytes())? {
            Line::Checkpoint(c) => Ok(c),
            Line::Record(_) => Err("this is a record, not a checkpoint".into()),
        }
    }
}

/// One parsed line.
// Lines are parsed one at a time, so the size difference costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Line {
    /// A record (a Merkle leaf).
    Record(Record),
    /// A signed checkpoint.
    Checkpoint(Checkpoint),
}

/// Parse one line (without its newline). Untrusted input: bounded, never panics.
pub fn parse_line(bytes: &[u8]) -> Result<Line, String> {
    if bytes.len() > MAX_LINE {
        return Err(format!("line longer than {MAX_LINE} bytes"));
    }
    if bytes.is_empty() {
        return Err("empty line".into());
    }
    if bytes.contains(&b'\r') {
        return Err("carriage return in line".into());
    }
    let line: Line = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if let Line::Checkpoint(c) = &line {
        if c.origin.is_empty() || c.origin.contains(['\n', '\r']) || c.origin.len() > 256 {
            return Err("checkpoint origin must be one line of 1 to 256 bytes".into());
        }
        if c.sig.0.len() != c.alg.signature_len() {
            return Err(format!(
                "checkpoint signature is {} bytes, {} needs {}",
                c.sig.0.len(),
                c.alg,
                c.alg.signature_len()
            ));
        }
        if let Some(f) = &c.frontier {
            if f.len() != c.size.count_ones() as usize {
                return Err("checkpoint frontier does not fit its size".into());
            }
        }
    }
    Ok(line)
}

/// Cut `s` to at most `max` bytes at a character boundary, marking the cut with `…`.
pub(crate) fn cap(s: &str, max: usize) -> String {
    cap_cow(s, max).into_owned()
}

/// [`cap`] without a copy when nothing is cut.
pub(crate) fn cap_cow(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}…", &s[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            seq: 3,
            time: Timestamp::from_micros(1_700_000_000_000_000),
            op: Op::Unwrap,
            outcome: Outcome::Ok,
            error: None,
            key: Some("raw-aes:ns/k".into()),
            keys: vec![],
            backend: Some("raw-aes".into()),
            suite: Some("0x0478".into()),
            ctx_sha256: Some(Hex32([1; 32])),
            edk_sha256: Some(Hex32([2; 32])),
            message_id: Some(HexBytes(vec![9; 32])),
            subject: Some("a\nb.txt".into()),
            bytes: None,
            detail: None,
            torn_offset: None,
            torn_len: None,
            torn_sha256: None,
            duration_us: 12,
            host: "h".into(),
            user: "u".into(),
            uid: Some(1000),
            pid: 77,
            identity: None,
            prev: Hex32([3; 32]),
        }
    }

    #[test]
    fn record_round_trips_on_one_line() {
        let line = Line::Record(record());
        let text = serde_json::to_string(&line).unwrap();
        assert!(text.starts_with(r#"{"type":"record","seq":3,"#), "{text}");
        assert!(!text.contains('\n'));
        assert_eq!(parse_line(text.as_bytes()).unwrap(), line);
    }

    #[test]
    fn strict_parsing() {
        let text = serde_json::to_string(&Line::Record(record())).unwrap();
        let extra = text.replacen("{", r#"{"evil":1,"#, 1);
        assert!(parse_line(extra.as_bytes()).is_err());
        let dup = text.replacen(r#""seq":3"#, r#""seq":3,"seq":4"#, 1);
        assert!(parse_line(dup.as_bytes()).is_err());
        let neg = text.replacen(r#""seq":3"#, r#""seq":-3"#, 1);
        assert!(parse_line(neg.as_bytes()).is_err());
        let op = text.replacen(r#""op":"unwrap""#, r#""op":"steal""#, 1);
        assert!(parse_line(op.as_bytes()).is_err());
        let ty = text.replacen(r#""type":"record""#, r#""type":"other""#, 1);
        assert!(parse_line(ty.as_bytes()).is_err());
        assert!(parse_line(b"").is_err());
        assert!(parse_line(&vec![b' '; MAX_LINE + 1]).is_err());
    }

    #[test]
    fn cap_cuts_at_char_boundary() {
        assert_eq!(cap("abc", 10), "abc");
        let s = "é".repeat(10);
        let c = cap(&s, 7);
        assert!(c.len() <= 7 && c.ends_with('…'), "{c}");
    }
}
