//! Local raw keys, byte-compatible with the ESDK Raw AES and Raw RSA keyrings.

pub mod aes;
pub mod rsa;

pub use aes::RawAesKey;
pub use rsa::{RawRsaKey, RsaPadding};
