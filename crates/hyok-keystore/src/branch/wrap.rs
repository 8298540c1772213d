//! Wrapping one data key under one branch key version: the construction of the ESDK
//! Hierarchical Keyring (framework/aws-kms/aws-kms-hierarchical-keyring.md, "Branch Key
//! Wrapping"), with hyok's own label in place of "aws-kms-hierarchy".
//!
//! EDK ciphertext = salt (16) ‖ IV (12) ‖ version (16, UUID bytes) ‖ encrypted key ‖ tag (16).
//! wrapping key   = KDF in counter mode, HMAC-SHA256 (NIST SP 800-108r1 §4.1), 32 bytes,
//!                  key = branch key, fixed input = label ‖ 0x00 ‖ salt ‖ [256]₃₂.
//! AES-256-GCM    (wrapping key, IV, AAD = label ‖ branch name ‖ version ‖ serialized context).
//!
//! Why no (key, nonce) pair repeats: every wrap draws a fresh 16-byte salt, so every wrap
//! uses its own derived key (a repeat needs a salt collision, 2⁻¹²⁸ per pair), and on top of
//! it a fresh 12-byte IV. With 224 random bits per wrap, the birthday bound allows 2⁹⁶ wraps
//! under one branch key version before a 2⁻³² chance of any key/IV repeat (the spec's
//! Appendix B). The branch key itself is never used as an AES-GCM key.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::kdf::{get_kbkdf_ctr_hmac_algorithm, kbkdf_ctr_hmac, KbkdfCtrHmacAlgorithmId};
use hyok_core::{DataKey, EncryptionContext};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The EDK provider id, KDF label and AAD prefix of hyok branch-key wraps.
pub const PROVIDER_ID: &str = "hyok-branch";

pub(crate) const SALT_LEN: usize = 16;
pub(crate) const IV_LEN: usize = 12;
pub(crate) const VERSION_LEN: usize = 16;
pub(crate) const TAG_LEN: usize = 16;
/// Bytes of a branch key version (AES-256 strength).
pub const BRANCH_KEY_LEN: usize = 32;

/// A branch key version's id: 16 random bytes (UUID version 4 layout).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VersionId(pub [u8; VERSION_LEN]);

impl VersionId {
    /// A fresh random id (RFC 9562 version 4).
    pub fn random() -> Result<Self> {
        let mut b = [0u8; VERSION_LEN];
        aws_lc_rs::rand::fill(&mut b)
            .map_err(|_| Error::Core(hyok_core::Error::Crypto("random")))?;
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Ok(Self(b))
    }

    /// Parse the hyphenated form `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
    pub fn parse(s: &str) -> Option<Self> {
        let hex: Vec<u8> = s.bytes().filter(|&c| c != b'-').collect();
        if s.len() != 36
            || hex.len() != 32
            || [8, 13, 18, 23].iter().any(|&i| s.as_bytes()[i] != b'-')
        {
            return None;
        }
        let mut out = [0u8; VERSION_LEN];
        for (i, pair) in hex.chunks(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(Self(out))
    }
}

impl std::fmt::Display for VersionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for VersionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VersionId({self})")
    }
}

fn crypto(what: &'static str) -> Error {
    Error::Core(hyok_core::Error::Crypto(what))
}

fn derive(branch_key: &[u8], salt: &[u8]) -> Result<LessSafeKey> {
    let alg = get_kbkdf_ctr_hmac_algorithm(KbkdfCtrHmacAlgorithmId::Sha256)
        .ok_or_else(|| crypto("kbkdf"))?;
    let mut info = Vec::with_capacity(PROVIDER_ID.len() + 1 + SALT_LEN + 4);
    info.extend_from_slice(PROVIDER_ID.as_bytes());
    info.push(0);
    info.extend_from_slice(salt);
    info.extend_from_slice(&((BRANCH_KEY_LEN * 8) as u32).to_be_bytes());
    let mut out = Zeroizing::new([0u8; BRANCH_KEY_LEN]);
    kbkdf_ctr_hmac(alg, branch_key, &info, &mut out[..]).map_err(|_| crypto("kbkdf"))?;
    let key = UnboundKey::new(&AES_256_GCM, &out[..]).map_err(|_| crypto("aes key"))?;
    Ok(LessSafeKey::new(key))
}

fn aad(branch: &str, version: &VersionId, context: &EncryptionContext) -> Result<Vec<u8>> {
    let ctx = context.serialize()?;
    let mut aad = Vec::with_capacity(PROVIDER_ID.len() + branch.len() + VERSION_LEN + ctx.len());
    aad.extend_from_slice(PROVIDER_ID.as_bytes());
    aad.extend_from_slice(branch.as_bytes());
    aad.extend_from_slice(&version.0);
    aad.extend_from_slice(&ctx);
    Ok(aad)
}

/// Wrap `data_key` under one branch key version: the EDK ciphertext.
pub(crate) fn seal(
    branch_key: &[u8],
    branch: &str,
    version: &VersionId,
    data_key: &DataKey,
    context: &EncryptionContext,
) -> Result<Vec<u8>> {
    let mut salt = [0u8; SALT_LEN];
    let mut iv = [0u8; IV_LEN];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| crypto("random"))?;
    aws_lc_rs::rand::fill(&mut iv).map_err(|_| crypto("random"))?;
    let key = derive(branch_key, &salt)?;
    let aad = aad(branch, version, context)?;
    let mut out = Vec::with_capacity(SALT_LEN + IV_LEN + VERSION_LEN + data_key.len() + TAG_LEN);
    out.extend_from_slice(&salt);
    out.extend_from_slice(&iv);
    out.extend_from_slice(&version.0);
    let start = out.len();
    out.extend_from_slice(data_key.expose());
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(iv),
            Aad::from(&aad),
            &mut out[start..],
        )
        .map_err(|_| crypto("seal data key"))?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// The version an EDK ciphertext names, after checking its length for a `key_len`-byte data
/// key.
pub(crate) fn version_of(ciphertext: &[u8], key_len: usize) -> Option<VersionId> {
    if ciphertext.len() != SALT_LEN + IV_LEN + VERSION_LEN + key_len + TAG_LEN {
        return None;
    }
    let mut v = [0u8; VERSION_LEN];
    v.copy_from_slice(&ciphertext[SALT_LEN + IV_LEN..SALT_LEN + IV_LEN + VERSION_LEN]);
    Some(VersionId(v))
}

/// The branch key version an EDK needs, when it is a branch-key wrap of a `key_len`-byte
/// data key (`None` for any other EDK).
pub fn edk_version(edk: &hyok_core::EncryptedDataKey, key_len: usize) -> Option<VersionId> {
    if edk.provider_id != PROVIDER_ID {
        return None;
    }
    version_of(&edk.ciphertext, key_len)
}

/// Unwrap an EDK ciphertext made by [`seal`]; `None` when authentication fails.
pub(crate) fn open(
    branch_key: &[u8],
    branch: &str,
    ciphertext: &[u8],
    key_len: usize,
    context: &EncryptionContext,
) -> Result<Option<DataKey>> {
    let Some(version) = version_of(ciphertext, key_len) else {
        return Ok(None);
    };
    let salt = &ciphertext[..SALT_LEN];
    let mut iv = [0u8; IV_LEN];
    iv.copy_from_slice(&ciphertext[SALT_LEN..SALT_LEN + IV_LEN]);
    let key = derive(branch_key, salt)?;
    let aad = aad(branch, &version, context)?;
    let mut buf = Zeroizing::new(ciphertext[SALT_LEN + IV_LEN + VERSION_LEN..].to_vec());
    match key.open_in_place(
        Nonce::assume_unique_for_key(iv),
        Aad::from(&aad),
        &mut buf[..],
    ) {
        Ok(pt) => Ok(Some(DataKey::from_slice(pt))),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> EncryptionContext {
        [("tenant", "a")].into_iter().collect()
    }

    #[test]
    fn version_ids_print_and_parse() {
        let v = VersionId::random().unwrap();
        let s = v.to_string();
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "4", "version 4 UUID: {s}");
        assert_eq!(VersionId::parse(&s), Some(v));
        for bad in [
            "",
            "x",
            &s[..35],
            &s.replace('-', "_"),
            &format!("{}g", &s[..35]),
        ] {
            assert_eq!(VersionId::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn seal_open_round_trip_and_binding() {
        let bk = [9u8; BRANCH_KEY_LEN];
        let v = VersionId::random().unwrap();
        let dk = DataKey::from_slice(&[5u8; 32]);
        let ct = seal(&bk, "b", &v, &dk, &ctx()).unwrap();
        assert_eq!(ct.len(), 16 + 12 + 16 + 32 + 16);
        assert_eq!(version_of(&ct, 32), Some(v));
        let back = open(&bk, "b", &ct, 32, &ctx()).unwrap().unwrap();
        assert_eq!(back.expose(), dk.expose());
        // Every binding input matters: key, branch name, context, each byte of the EDK.
        assert!(open(&[8u8; 32], "b", &ct, 32, &ctx()).unwrap().is_none());
        assert!(open(&bk, "c", &ct, 32, &ctx()).unwrap().is_none());
        assert!(open(&bk, "b", &ct, 32, &EncryptionContext::new())
            .unwrap()
            .is_none());
        for i in 0..ct.len() {
            let mut t = ct.clone();
            t[i] ^= 1;
            assert!(
                open(&bk, "b", &t, 32, &ctx()).unwrap().is_none(),
                "byte {i}"
            );
        }
        assert!(open(&bk, "b", &ct[1..], 32, &ctx()).unwrap().is_none());
        let edk = hyok_core::EncryptedDataKey {
            provider_id: PROVIDER_ID.into(),
            provider_info: b"b".to_vec(),
            ciphertext: ct.clone(),
        };
        assert_eq!(edk_version(&edk, 32), Some(v));
        assert_eq!(edk_version(&edk, 16), None, "length checked");
        let other = hyok_core::EncryptedDataKey {
            provider_id: "raw-aes".into(),
            ..edk
        };
        assert_eq!(edk_version(&other, 32), None, "only branch wraps");
        // Two wraps of one data key never share salt or IV.
        let ct2 = seal(&bk, "b", &v, &dk, &ctx()).unwrap();
        assert_ne!(ct[..28], ct2[..28]);
    }

    /// SP 800-108 counter mode, checked against an independent HMAC computation: the one
    /// block of output is HMAC-SHA256(key, [1]₃₂ ‖ label ‖ 0x00 ‖ salt ‖ [256]₃₂).
    #[test]
    fn kdf_is_sp800_108_counter_mode() {
        use aws_lc_rs::hmac;
        let bk = [3u8; 32];
        let salt = [4u8; SALT_LEN];
        let mut msg = vec![0, 0, 0, 1];
        msg.extend_from_slice(PROVIDER_ID.as_bytes());
        msg.push(0);
        msg.extend_from_slice(&salt);
        msg.extend_from_slice(&256u32.to_be_bytes());
        let expect = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &bk), &msg);
        let want = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, expect.as_ref()).unwrap());
        let got = derive(&bk, &salt).unwrap();
        let iv = [0u8; IV_LEN];
        let a = want
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(iv), Aad::empty(), &mut [])
            .unwrap();
        let b = got
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(iv), Aad::empty(), &mut [])
            .unwrap();
        assert_eq!(a.as_ref(), b.as_ref());
    }
}
