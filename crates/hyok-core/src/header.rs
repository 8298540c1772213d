//! The message header (ESDK spec `data-format/message-header.md`): parsing from a stream,
//! encoding, and header authentication (`client-apis/encrypt.md#construct-the-header`).

use std::io::Read;

use aws_lc_rs::aead::{Aad, Nonce};
use aws_lc_rs::constant_time::verify_slices_are_equal;

use crate::codec::{put_u16, put_u32, put_var16, RecordingReader};
use crate::context::EncryptionContext;
use crate::error::{Error, Result};
use crate::key::{DerivedKeys, EncryptedDataKey};
use crate::suite::AlgorithmSuite;

/// Length of every GCM tag in the format.
pub const TAG_LEN: usize = 16;
/// Length of every GCM IV in the format.
pub const IV_LEN: usize = 12;
/// Largest frame length a writer uses (readers such as the Python ESDK refuse more).
pub const MAX_WRITE_FRAME_LEN: u32 = i32::MAX as u32;
/// Default frame length of hyok (64 KiB).
pub const DEFAULT_FRAME_LEN: u32 = 64 * 1024;
/// Largest frame length a reader accepts unless told otherwise (16 MiB). A reader holds
/// about two frames in memory, so this bounds memory whatever a header says.
pub const DEFAULT_MAX_READ_FRAME_LEN: u32 = 16 * 1024 * 1024;

/// How the body is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentType {
    /// One GCM block for the whole plaintext (legacy; read only).
    NonFramed,
    /// A sequence of frames ending with a final frame.
    Framed,
}

impl ContentType {
    fn byte(self) -> u8 {
        match self {
            Self::NonFramed => 1,
            Self::Framed => 2,
        }
    }
}

/// A parsed header body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Algorithm suite; also fixes the message format version.
    pub suite: AlgorithmSuite,
    /// Message id: 16 bytes (v1) or 32 bytes (v2).
    pub message_id: Vec<u8>,
    /// The encryption context stored in the header.
    pub context: EncryptionContext,
    /// The wrapped copies of the data key.
    pub edks: Vec<EncryptedDataKey>,
    /// Body layout.
    pub content_type: ContentType,
    /// Frame length (0 for non-framed bodies).
    pub frame_length: u32,
    /// Suite data: the key commitment for v2 suites, empty for v1.
    pub suite_data: Vec<u8>,
}

/// Limits applied while reading untrusted headers.
#[derive(Clone, Copy, Debug)]
pub struct HeaderLimits {
    /// Maximum number of encrypted data keys; more is an error before any unwrap.
    pub max_edks: usize,
    /// Maximum frame length; a larger one is an error before any unwrap. The format's own
    /// bound, 2^31 − 1 ([`MAX_WRITE_FRAME_LEN`]), applies whatever this says.
    pub max_frame_length: u32,
}

impl Default for HeaderLimits {
    fn default() -> Self {
        Self {
            max_edks: 32,
            max_frame_length: DEFAULT_MAX_READ_FRAME_LEN,
        }
    }
}

/// A header as read from a message, with its authentication fields and the exact bytes
/// received (those bytes, not a re-encoding, are what gets authenticated).
#[derive(Clone, Debug)]
pub struct ParsedHeader {
    /// The parsed fields.
    pub header: Header,
    pub(crate) body_bytes: Vec<u8>,
    pub(crate) auth_iv: [u8; IV_LEN],
    pub(crate) auth_tag: [u8; TAG_LEN],
}

impl ParsedHeader {
    /// The header as it appeared on the wire: body ‖ authentication.
    pub fn wire_bytes(&self) -> Vec<u8> {
        let mut out = self.body_bytes.clone();
        if self.header.suite.message_format_version() == 1 {
            out.extend_from_slice(&self.auth_iv);
        }
        out.extend_from_slice(&self.auth_tag);
        out
    }

    /// Length of the header on the wire.
    pub fn wire_len(&self) -> usize {
        let iv = if self.header.suite.message_format_version() == 1 {
            IV_LEN
        } else {
            0
        };
        self.body_bytes.len() + iv + TAG_LEN
    }

    /// Read and parse a header from `r`, consuming exactly the header's bytes.
    pub fn read<R: Read>(r: &mut R, limits: HeaderLimits) -> Result<Self> {
        let mut rr = RecordingReader::new(r, "header");
        let version = rr.u8()?;
        let suite = match version {
            1 => {
                let ty = rr.u8()?;
                if ty != 0x80 {
                    return Err(Error::MalformedHeader(format!(
                        "message type 0x{ty:02x}, expected 0x80"
                    )));
                }
                let suite = AlgorithmSuite::from_id(rr.u16()?)?;
                if suite.message_format_version() != 1 {
                    return Err(Error::MalformedHeader(format!(
                        "suite 0x{:04x} in a version 1 header",
                        suite.id()
                    )));
                }
                suite
            }
            2 => {
                let suite = AlgorithmSuite::from_id(rr.u16()?)?;
                if suite.message_format_version() != 2 {
                    return Err(Error::MalformedHeader(format!(
                        "suite 0x{:04x} in a version 2 header",
                        suite.id()
                    )));
                }
                suite
            }
            // The base64 encoding of a v1/v2 message starts with "AY"/"Ag": say so.
            b'A' => {
                return Err(Error::MalformedHeader(
                    "input looks base64-encoded; decode it first".into(),
                ))
            }
            v => return Err(Error::UnsupportedVersion(v)),
        };
        let message_id = rr.bytes(suite.message_id_len())?.to_vec();
        let aad_len = rr.u16()? as usize;
        let context = EncryptionContext::deserialize(rr.bytes(aad_len)?)?;
        let count = rr.u16()? as usize;
        if count == 0 {
            return Err(Error::MalformedHeader(
                "encrypted data key count is zero".into(),
            ));
        }
        if count > limits.max_edks {
            return Err(Error::TooManyEncryptedDataKeys {
                found: count,
                max: limits.max_edks,
            });
        }
        let mut edks = Vec::with_capacity(count);
        for _ in 0..count {
            let provider_id = String::from_utf8(rr.var16()?)
                .map_err(|_| Error::MalformedHeader("key provider id is not UTF-8".into()))?;
            let provider_info = rr.var16()?;
            let ciphertext = rr.var16()?;
            edks.push(EncryptedDataKey {
                provider_id,
                provider_info,
                ciphertext,
            });
        }
        let content_type = match rr.u8()? {
            1 => ContentType::NonFramed,
            2 => ContentType::Framed,
            t => return Err(Error::MalformedHeader(format!("content type 0x{t:02x}"))),
        };
        if version == 1 {
            let reserved = rr.u32()?;
            if reserved != 0 {
                return Err(Error::MalformedHeader("reserved field is not zero".into()));
            }
            let iv_len = rr.u8()?;
            if iv_len as usize != IV_LEN {
                return Err(Error::MalformedHeader(format!("IV length {iv_len}")));
            }
        }
        let frame_length = rr.u32()?;
        match content_type {
            ContentType::NonFramed if frame_length != 0 => {
                return Err(Error::MalformedHeader(
                    "non-framed message with a frame length".into(),
                ))
            }
            ContentType::Framed if frame_length == 0 => {
                return Err(Error::MalformedHeader(
                    "framed message with frame length 0".into(),
                ))
            }
            _ => {}
        }
        let max_frame = limits.max_frame_length.min(MAX_WRITE_FRAME_LEN);
        if frame_length > max_frame {
            return Err(Error::FrameLengthLimit {
                found: frame_length,
                max: max_frame,
            });
        }
        let suite_data = if version == 2 {
            rr.bytes(32)?.to_vec()
        } else {
            Vec::new()
        };
        let body_len = rr.recorded.len();
        rr.set_what("header authentication");
        let mut auth_iv = [0u8; IV_LEN];
        if version == 1 {
            auth_iv.copy_from_slice(rr.bytes(IV_LEN)?);
            // The format fixes the header IV to zero; no other value is a valid header.
            if auth_iv != [0u8; IV_LEN] {
                return Err(Error::MalformedHeader(
                    "the header authentication IV is not zero, as the format prescribes".into(),
                ));
            }
        }
        let mut auth_tag = [0u8; TAG_LEN];
        auth_tag.copy_from_slice(rr.bytes(TAG_LEN)?);
        let mut body_bytes = rr.recorded;
        body_bytes.truncate(body_len);
        Ok(Self {
            header: Header {
                suite,
                message_id,
                context,
                edks,
                content_type,
                frame_length,
                suite_data,
            },
            body_bytes,
            auth_iv,
            auth_tag,
        })
    }

    /// Check the key commitment (v2) and the header tag with the derived keys.
    /// `auth_only` is the serialized required/reproduced context that is not stored.
    pub(crate) fn authenticate(&self, keys: &DerivedKeys, auth_only: &[u8]) -> Result<()> {
        if let Some(commit) = &keys.commitment {
            verify_slices_are_equal(commit, &self.header.suite_data)
                .map_err(|_| Error::Commitment)?;
        }
        let mut aad = Vec::with_capacity(self.body_bytes.len() + auth_only.len());
        aad.extend_from_slice(&self.body_bytes);
        aad.extend_from_slice(auth_only);
        let mut tag = self.auth_tag;
        keys.aead
            .open_in_place(
                Nonce::assume_unique_for_key(self.auth_iv),
                Aad::from(&aad),
                &mut tag,
            )
            .map_err(|_| Error::HeaderAuth)?;
        Ok(())
    }
}

/// Bytes of a regular frame around its plaintext: sequence number, IV and tag.
pub const REGULAR_FRAME_OVERHEAD: u64 = 4 + IV_LEN as u64 + TAG_LEN as u64;
/// Bytes of the final frame around its plaintext: marker, sequence number, IV, length, tag.
pub const FINAL_FRAME_OVERHEAD: u64 = 4 + 4 + IV_LEN as u64 + 4 + TAG_LEN as u64;

impl Header {
    /// Offset of frame `seq` (from 1) from the start of the body of a framed message: every
    /// frame before it is a regular frame of `frame_length` plaintext bytes.
    pub fn frame_offset(&self, seq: u32) -> u64 {
        u64::from(seq.saturating_sub(1)) * (u64::from(self.frame_length) + REGULAR_FRAME_OVERHEAD)
    }

    /// For a framed message whose body (frames, no footer) is `body_len` bytes: the number
    /// of regular frames and the plaintext length of the final frame, or `None` when no
    /// framed body has that length.
    pub fn framed_layout(&self, body_len: u64) -> Option<(u64, u64)> {
        if self.content_type != ContentType::Framed || self.frame_length == 0 {
            return None;
        }
        let rest = body_len.checked_sub(FINAL_FRAME_OVERHEAD)?;
        let regular = u64::from(self.frame_length) + REGULAR_FRAME_OVERHEAD;
        let n = rest / regular;
        let last = rest % regular;
        (last <= u64::from(self.frame_length)).then_some((n, last))
    }

    /// Encode the header body (everything before the authentication fields).
    pub fn encode_body(&self) -> Result<Vec<u8>> {
        let suite = self.suite;
        let v = suite.message_format_version();
        if self.message_id.len() != suite.message_id_len() {
            return Err(Error::InvalidParameter("message id length".into()));
        }
        let mut out = Vec::with_capacity(256);
        out.push(v);
        if v == 1 {
            out.push(0x80);
        }
        put_u16(&mut out, suite.id());
        out.extend_from_slice(&self.message_id);
        let ctx = self.context.serialize()?;
        put_var16(&mut out, &ctx, "encryption context")?;
        if self.edks.is_empty() {
            return Err(Error::InvalidParameter("no encrypted data keys".into()));
        }
        let n = u16::try_from(self.edks.len())
            .map_err(|_| Error::InvalidParameter("more than 65535 encrypted data keys".into()))?;
        put_u16(&mut out, n);
        for edk in &self.edks {
            put_var16(&mut out, edk.provider_id.as_bytes(), "key provider id")?;
            put_var16(&mut out, &edk.provider_info, "key provider info")?;
            put_var16(&mut out, &edk.ciphertext, "encrypted data key")?;
        }
        out.push(self.content_type.byte());
        if v == 1 {
            put_u32(&mut out, 0);
            out.push(IV_LEN as u8);
        }
        put_u32(&mut out, self.frame_length);
        if v == 2 {
            if self.suite_data.len() != 32 {
                return Err(Error::InvalidParameter("suite data length".into()));
            }
            out.extend_from_slice(&self.suite_data);
        }
        Ok(out)
    }
}

/// Compute the header tag for an encoded header body.
///
/// The tag is AES-GCM under the message's derived key with the all-zero IV (ESDK
/// client-apis/encrypt.md). It must therefore be computed **once per message id**: two
/// different header bodies tagged under one derived key are two GCM messages under one
/// (key, nonce) pair, which leaks the GHASH key and lets the holder of both forge frames.
/// The only caller is [`crate::Encryptor::new`], whose message id comes fresh from
/// [`crate::PendingEncryption::new`]; see "No second header for a message" in DESIGN.md.
pub(crate) fn seal_header(
    keys: &DerivedKeys,
    body: &[u8],
    auth_only: &[u8],
) -> Result<[u8; TAG_LEN]> {
    let mut aad = Vec::with_capacity(body.len() + auth_only.len());
    aad.extend_from_slice(body);
    aad.extend_from_slice(auth_only);
    #[cfg(test)]
    sealed_headers::record(keys, &aad);
    let tag = keys
        .aead
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key([0u8; IV_LEN]),
            Aad::from(&aad),
            &mut [],
        )
        .map_err(|_| Error::Crypto("seal header"))?;
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(tag.as_ref());
    Ok(out)
}

/// Test-only record of every header tag computed on this thread: (fingerprint of the derived
/// key, SHA-256 of the authenticated header bytes). Lets a test check that no derived key
/// ever tags two different headers.
#[cfg(test)]
pub(crate) mod sealed_headers {
    use std::cell::RefCell;

    use aws_lc_rs::aead::{Aad, Nonce};
    use aws_lc_rs::digest::{digest, SHA256};

    use crate::key::DerivedKeys;

    thread_local! {
        static SEALED: RefCell<Vec<(Vec<u8>, Vec<u8>)>> = const { RefCell::new(Vec::new()) };
    }

    /// E_K(J0) identifies the derived key (GCM tag of nothing with the zero nonce).
    fn fingerprint(keys: &DerivedKeys) -> Vec<u8> {
        keys.aead
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key([0; 12]),
                Aad::empty(),
                &mut [],
            )
            .map(|t| t.as_ref().to_vec())
            .unwrap_or_default()
    }

    pub(crate) fn record(keys: &DerivedKeys, aad: &[u8]) {
        let entry = (fingerprint(keys), digest(&SHA256, aad).as_ref().to_vec());
        SEALED.with(|s| s.borrow_mut().push(entry));
    }

    /// Everything recorded on this thread since the last call.
    pub(crate) fn take() -> Vec<(Vec<u8>, Vec<u8>)> {
        SEALED.with(|s| std::mem::take(&mut *s.borrow_mut()))
    }
}
