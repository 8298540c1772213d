//! MD5 through AWS-LC's `EVP_Digest*` API, for the one place hyok needs it: the S3 protocol
//! (ETags of single-part objects and parts, `Content-MD5` checks). MD5 is not a security
//! function there (the client's SigV4 signature and the message's own authentication are);
//! it is on the gateway's upload path, where AWS-LC's assembly implementation costs about
//! four fifths of a portable one (docs/DESIGN.md, "MD5 through AWS-LC").
//!
//! In a FIPS build MD5 is a non-approved service of the module; it is used here only for
//! these protocol checksums, never for keys, signatures or integrity of stored messages.

use crate::owned::MdCtx;
use crate::{fail, ffi, Error, Result};

/// Length of an MD5 digest in bytes.
pub const MD5_LEN: usize = 16;

/// A streaming MD5: [`Self::update`] with the data in pieces, then [`Self::finish`].
pub struct Md5 {
    ctx: MdCtx,
}

impl std::fmt::Debug for Md5 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Md5(..)")
    }
}

impl Md5 {
    /// A new, empty hash.
    pub fn new() -> Result<Self> {
        // SAFETY: takes no arguments; returns a new context or null.
        let ctx = MdCtx::from_ptr(unsafe { ffi::EVP_MD_CTX_new() }, "EVP_MD_CTX_new")?;
        // SAFETY: valid context; EVP_md5 returns a pointer to a static, immutable method
        // table that is never freed; no engine.
        let ok =
            unsafe { ffi::EVP_DigestInit_ex(ctx.as_ptr(), ffi::EVP_md5(), std::ptr::null_mut()) };
        if ok != 1 {
            return fail(Error::Failed("EVP_DigestInit_ex (MD5)"));
        }
        Ok(Self { ctx })
    }

    /// Add `data` to the hashed bytes.
    pub fn update(&mut self, data: &[u8]) {
        // SAFETY: valid context set up for MD5; reads data.len() bytes from a valid slice.
        // EVP_DigestUpdate of an initialised plain digest always returns 1 (it only
        // buffers and compresses), so its result carries no information.
        let _ =
            unsafe { ffi::EVP_DigestUpdate(self.ctx.as_ptr(), data.as_ptr().cast(), data.len()) };
    }

    /// The digest of everything given to [`Self::update`].
    pub fn finish(self) -> Result<[u8; MD5_LEN]> {
        let mut out = [0u8; ffi::EVP_MAX_MD_SIZE as usize];
        let mut len = 0u32;
        // SAFETY: valid context set up for MD5; writes at most EVP_MAX_MD_SIZE bytes (the
        // size of `out`) and stores the length written in `len`.
        let ok = unsafe { ffi::EVP_DigestFinal_ex(self.ctx.as_ptr(), out.as_mut_ptr(), &mut len) };
        if ok != 1 || len as usize != MD5_LEN {
            return fail(Error::Failed("EVP_DigestFinal_ex (MD5)"));
        }
        let mut d = [0u8; MD5_LEN];
        d.copy_from_slice(&out[..MD5_LEN]);
        Ok(d)
    }

    /// The digest of `data`.
    pub fn digest(data: &[u8]) -> Result<[u8; MD5_LEN]> {
        let mut h = Self::new()?;
        h.update(data);
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(d: [u8; MD5_LEN]) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// RFC 1321, appendix A.5.
    #[test]
    fn rfc_1321_test_suite() {
        let cases = [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                "abcdefghijklmnopqrstuvwxyz",
                "c3fcd3d76192e4007dfb496cca67e13b",
            ),
            (
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                "d174ab98d277d9f5a5611c2c9f419d9f",
            ),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                hex(Md5::digest(input.as_bytes()).unwrap()),
                want,
                "{input:?}"
            );
        }
    }

    #[test]
    fn pieces_hash_like_the_whole() {
        let data: Vec<u8> = (0..200_003u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let whole = Md5::digest(&data).unwrap();
        for step in [1usize, 63, 64, 65, 4096, 100_000] {
            let mut h = Md5::new().unwrap();
            for piece in data.chunks(step) {
                h.update(piece);
            }
            assert_eq!(h.finish().unwrap(), whole, "pieces of {step}");
        }
        assert_ne!(Md5::digest(&data[1..]).unwrap(), whole);
    }
}
