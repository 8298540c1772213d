//! X-Wing, the hybrid KEM of ML-KEM-768 (FIPS 203) and X25519 (RFC 7748), as specified in
//! draft-connolly-cfrg-xwing-kem-08: the shared secret is
//! `SHA3-256(ss_M ‖ ss_X ‖ ct_X ‖ pk_X ‖ XWingLabel)`, so it stays secret while either
//! ML-KEM-768 or X25519 holds (the draft's security argument and the X-Wing paper,
//! eprint 2024/039). Every primitive comes from aws-lc-rs: ML-KEM-768 (`kem`), X25519
//! (`agreement`), SHA3-256 (`digest`), randomness (`rand`).
//!
//! Encodings follow the draft: an encapsulation key is `pk_M (1184) ‖ pk_X (32)`, a
//! ciphertext `ct_M (1088) ‖ ct_X (32)`. The decapsulation key is kept **expanded**,
//! `sk_M (2400, FIPS 203 decapsulation key) ‖ sk_X (32)` as in the draft's earlier
//! versions, not as the draft-08 32-byte seed: aws-lc-rs has no deterministic ML-KEM key
//! generation from a seed, so a seed could not be expanded again (docs/CUSTODY.md).

use aws_lc_rs::agreement::{self, UnparsedPublicKey, X25519};
use aws_lc_rs::digest::{self, SHA3_256};
use aws_lc_rs::kem::{Ciphertext, DecapsulationKey, EncapsulationKey, ML_KEM_768};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// `XWingLabel`: the 6 ASCII bytes `\.//^\`.
pub const LABEL: [u8; 6] = [0x5c, 0x2e, 0x2f, 0x2f, 0x5e, 0x5c];
/// ML-KEM-768 encapsulation key length.
pub const PK_M_LEN: usize = 1184;
/// ML-KEM-768 decapsulation key length (expanded form of FIPS 203).
pub const SK_M_LEN: usize = 2400;
/// ML-KEM-768 ciphertext length.
pub const CT_M_LEN: usize = 1088;
/// X-Wing encapsulation key length.
pub const PUBLIC_LEN: usize = PK_M_LEN + 32;
/// X-Wing ciphertext length.
pub const CIPHERTEXT_LEN: usize = CT_M_LEN + 32;
/// Expanded X-Wing decapsulation key length (`sk_M ‖ sk_X`).
pub const SECRET_LEN: usize = SK_M_LEN + 32;

fn failed(what: &str) -> Error {
    Error::Config(format!("X-Wing: {what}"))
}

/// The X-Wing combiner (draft-08, section "Combiner").
pub fn combine(ss_m: &[u8], ss_x: &[u8], ct_x: &[u8], pk_x: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut ctx = digest::Context::new(&SHA3_256);
    for part in [ss_m, ss_x, ct_x, pk_x, &LABEL[..]] {
        ctx.update(part);
    }
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// An X-Wing encapsulation (public) key.
pub struct PublicKey {
    ek: EncapsulationKey,
    bytes: Vec<u8>,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("X-Wing public key")
    }
}

impl PublicKey {
    /// Parse the 1216-byte encoding `pk_M ‖ pk_X`.
    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        if b.len() != PUBLIC_LEN {
            return Err(failed(&format!(
                "a public key is {PUBLIC_LEN} bytes, not {}",
                b.len()
            )));
        }
        let ek = EncapsulationKey::new(&ML_KEM_768, &b[..PK_M_LEN])
            .map_err(|_| failed("the ML-KEM-768 public key is not valid"))?;
        Ok(Self {
            ek,
            bytes: b.to_vec(),
        })
    }

    /// The 1216-byte encoding.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn pk_x(&self) -> &[u8] {
        &self.bytes[PK_M_LEN..]
    }

    /// A fresh shared secret and its 1120-byte ciphertext (draft-08 "Encapsulation").
    pub fn encapsulate(&self) -> Result<(Zeroizing<[u8; 32]>, Vec<u8>)> {
        let ek_x = agreement::PrivateKey::generate(&X25519)
            .map_err(|_| failed("X25519 key generation failed"))?;
        let ct_x = ek_x
            .compute_public_key()
            .map_err(|_| failed("X25519 public key failed"))?;
        let ss_x: Zeroizing<Vec<u8>> = agreement::agree(
            &ek_x,
            UnparsedPublicKey::new(&X25519, self.pk_x()),
            failed("X25519 agreement failed (a low-order public key)"),
            |s| Ok(Zeroizing::new(s.to_vec())),
        )?;
        let (ct_m, ss_m) = self
            .ek
            .encapsulate()
            .map_err(|_| failed("ML-KEM-768 encapsulation failed"))?;
        let ss = combine(ss_m.as_ref(), &ss_x, ct_x.as_ref(), self.pk_x());
        let mut ct = Vec::with_capacity(CIPHERTEXT_LEN);
        ct.extend_from_slice(ct_m.as_ref());
        ct.extend_from_slice(ct_x.as_ref());
        Ok((ss, ct))
    }
}

/// An X-Wing decapsulation (private) key with its public key.
pub struct PrivateKey {
    dk: DecapsulationKey,
    sk_x: agreement::PrivateKey,
    public: PublicKey,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("X-Wing private key")
    }
}

impl PrivateKey {
    /// A fresh key pair from the system CSPRNG.
    pub fn generate() -> Result<Self> {
        let dk = DecapsulationKey::generate(&ML_KEM_768)
            .map_err(|_| failed("ML-KEM-768 key generation failed"))?;
        let mut sk_x = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(&mut sk_x[..])
            .map_err(|_| failed("the system random number generator failed"))?;
        let ek = dk
            .encapsulation_key()
            .and_then(|e| e.key_bytes())
            .map_err(|_| failed("ML-KEM-768 public key failed"))?;
        let sk_m = Zeroizing::new(
            dk.key_bytes()
                .map_err(|_| failed("ML-KEM-768 key encoding failed"))?
                .as_ref()
                .to_vec(),
        );
        let mut secret = Zeroizing::new(Vec::with_capacity(SECRET_LEN));
        secret.extend_from_slice(&sk_m);
        secret.extend_from_slice(&sk_x[..]);
        let pk_x = x25519_public(&sk_x[..])?;
        let mut public = ek.as_ref().to_vec();
        public.extend_from_slice(&pk_x);
        Self::from_parts(&secret, &public)
    }

    /// A key from its expanded secret (`sk_M ‖ sk_X`, 2432 bytes) and its public key
    /// (1216 bytes). Refuses parts that do not belong together: the public ML-KEM key
    /// must be the one inside `sk_M` (FIPS 203 stores `ek ‖ H(ek) ‖ z` after `dk_PKE`), and
    /// `pk_X` must be `X25519(sk_X, 9)`.
    pub fn from_parts(secret: &[u8], public: &[u8]) -> Result<Self> {
        if secret.len() != SECRET_LEN {
            return Err(failed(&format!(
                "a private key is {SECRET_LEN} bytes, not {}",
                secret.len()
            )));
        }
        let public = PublicKey::from_bytes(public)?;
        let (sk_m, sk_x) = secret.split_at(SK_M_LEN);
        let ek_inside = &sk_m[1152..1152 + PK_M_LEN];
        let h_inside = &sk_m[1152 + PK_M_LEN..1152 + PK_M_LEN + 32];
        if ek_inside != &public.as_bytes()[..PK_M_LEN]
            || h_inside != digest::digest(&SHA3_256, ek_inside).as_ref()
        {
            return Err(failed(
                "the private and public keys do not belong together (ML-KEM-768 part)",
            ));
        }
        if x25519_public(sk_x)?[..] != *public.pk_x() {
            return Err(failed(
                "the private and public keys do not belong together (X25519 part)",
            ));
        }
        let dk = DecapsulationKey::new(&ML_KEM_768, sk_m)
            .map_err(|_| failed("the ML-KEM-768 private key is not valid"))?;
        let sk_x = agreement::PrivateKey::from_private_key(&X25519, sk_x)
            .map_err(|_| failed("the X25519 private key is not valid"))?;
        Ok(Self { dk, sk_x, public })
    }

    /// The expanded secret `sk_M ‖ sk_X` (zeroized on drop).
    pub fn secret_bytes(&self) -> Result<Zeroizing<Vec<u8>>> {
        use aws_lc_rs::encoding::{AsBigEndian, Curve25519SeedBin};
        let sk_m = self
            .dk
            .key_bytes()
            .map_err(|_| failed("ML-KEM-768 key encoding failed"))?;
        let sk_x: Curve25519SeedBin<'_> = self
            .sk_x
            .as_be_bytes()
            .map_err(|_| failed("X25519 key encoding failed"))?;
        let mut out = Zeroizing::new(Vec::with_capacity(SECRET_LEN));
        out.extend_from_slice(sk_m.as_ref());
        out.extend_from_slice(sk_x.as_ref());
        Ok(out)
    }

    /// The public key.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The shared secret of a 1120-byte ciphertext (draft-08 "Decapsulation"). ML-KEM
    /// rejects implicitly: a corrupted ML-KEM half yields a different secret, not an error.
    pub fn decapsulate(&self, ct: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        if ct.len() != CIPHERTEXT_LEN {
            return Err(failed(&format!(
                "a ciphertext is {CIPHERTEXT_LEN} bytes, not {}",
                ct.len()
            )));
        }
        let (ct_m, ct_x) = ct.split_at(CT_M_LEN);
        let ss_m = self
            .dk
            .decapsulate(Ciphertext::from(ct_m))
            .map_err(|_| failed("ML-KEM-768 decapsulation failed"))?;
        let ss_x: Zeroizing<Vec<u8>> = agreement::agree(
            &self.sk_x,
            UnparsedPublicKey::new(&X25519, ct_x),
            failed("X25519 agreement failed (a low-order point in the ciphertext)"),
            |s| Ok(Zeroizing::new(s.to_vec())),
        )?;
        Ok(combine(ss_m.as_ref(), &ss_x, ct_x, self.public.pk_x()))
    }
}

/// `X25519(sk, 9)`.
fn x25519_public(sk: &[u8]) -> Result<[u8; 32]> {
    let k = agreement::PrivateKey::from_private_key(&X25519, sk)
        .map_err(|_| failed("the X25519 private key is not valid"))?;
    let p = k
        .compute_public_key()
        .map_err(|_| failed("X25519 public key failed"))?;
    let mut out = [0u8; 32];
    out.copy_from_slice(p.as_ref());
    Ok(out)
}
