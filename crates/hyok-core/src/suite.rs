//! Algorithm suites (ESDK spec `framework/algorithm-suites.md`).

use crate::error::{Error, Result};

/// Key derivation of a suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kdf {
    /// The data key is used as is (legacy).
    Identity,
    /// HKDF-SHA256 with info = suite id ‖ message id.
    HkdfSha256,
    /// HKDF-SHA384 with info = suite id ‖ message id.
    HkdfSha384,
    /// HKDF-SHA512 with the message id as salt and a key commitment.
    HkdfSha512Commit,
}

/// ECDSA signature algorithm of a signed suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    /// ECDSA over P-256 with SHA-256.
    EcdsaP256Sha256,
    /// ECDSA over P-384 with SHA-384.
    EcdsaP384Sha384,
}

/// One of the eleven ESDK message suites.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types, missing_docs)]
pub enum AlgorithmSuite {
    Aes128GcmIv12Tag16NoKdf,
    Aes192GcmIv12Tag16NoKdf,
    Aes256GcmIv12Tag16NoKdf,
    Aes128GcmIv12Tag16HkdfSha256,
    Aes192GcmIv12Tag16HkdfSha256,
    Aes256GcmIv12Tag16HkdfSha256,
    Aes128GcmIv12Tag16HkdfSha256EcdsaP256,
    Aes192GcmIv12Tag16HkdfSha384EcdsaP384,
    Aes256GcmIv12Tag16HkdfSha384EcdsaP384,
    /// 0x0478: AES-256-GCM, HKDF-SHA512, key commitment. hyok's default.
    Aes256GcmHkdfSha512CommitKey,
    /// 0x0578: as 0x0478 plus an ECDSA P-384 footer signature.
    Aes256GcmHkdfSha512CommitKeyEcdsaP384,
}

impl AlgorithmSuite {
    /// Every suite, in id order.
    pub const ALL: [Self; 11] = [
        Self::Aes128GcmIv12Tag16NoKdf,
        Self::Aes192GcmIv12Tag16NoKdf,
        Self::Aes256GcmIv12Tag16NoKdf,
        Self::Aes128GcmIv12Tag16HkdfSha256,
        Self::Aes192GcmIv12Tag16HkdfSha256,
        Self::Aes256GcmIv12Tag16HkdfSha256,
        Self::Aes128GcmIv12Tag16HkdfSha256EcdsaP256,
        Self::Aes192GcmIv12Tag16HkdfSha384EcdsaP384,
        Self::Aes256GcmIv12Tag16HkdfSha384EcdsaP384,
        Self::Aes256GcmHkdfSha512CommitKey,
        Self::Aes256GcmHkdfSha512CommitKeyEcdsaP384,
    ];

    /// The two-byte suite identifier.
    pub const fn id(self) -> u16 {
        match self {
            Self::Aes128GcmIv12Tag16NoKdf => 0x0014,
            Self::Aes192GcmIv12Tag16NoKdf => 0x0046,
            Self::Aes256GcmIv12Tag16NoKdf => 0x0078,
            Self::Aes128GcmIv12Tag16HkdfSha256 => 0x0114,
            Self::Aes192GcmIv12Tag16HkdfSha256 => 0x0146,
            Self::Aes256GcmIv12Tag16HkdfSha256 => 0x0178,
            Self::Aes128GcmIv12Tag16HkdfSha256EcdsaP256 => 0x0214,
            Self::Aes192GcmIv12Tag16HkdfSha384EcdsaP384 => 0x0346,
            Self::Aes256GcmIv12Tag16HkdfSha384EcdsaP384 => 0x0378,
            Self::Aes256GcmHkdfSha512CommitKey => 0x0478,
            Self::Aes256GcmHkdfSha512CommitKeyEcdsaP384 => 0x0578,
        }
    }

    /// Look a suite up by id; ids of other AWS products are rejected.
    pub fn from_id(id: u16) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.id() == id)
            .ok_or(Error::UnknownSuite(id))
    }

    /// Message format version the suite implies (1 or 2).
    pub const fn message_format_version(self) -> u8 {
        if self.is_committing() {
            2
        } else {
            1
        }
    }

    /// Length of the data key and of the derived encryption key.
    pub const fn key_len(self) -> usize {
        match self {
            Self::Aes128GcmIv12Tag16NoKdf
            | Self::Aes128GcmIv12Tag16HkdfSha256
            | Self::Aes128GcmIv12Tag16HkdfSha256EcdsaP256 => 16,
            Self::Aes192GcmIv12Tag16NoKdf
            | Self::Aes192GcmIv12Tag16HkdfSha256
            | Self::Aes192GcmIv12Tag16HkdfSha384EcdsaP384 => 24,
            _ => 32,
        }
    }

    /// The suite's key derivation.
    pub const fn kdf(self) -> Kdf {
        match self {
            Self::Aes128GcmIv12Tag16NoKdf
            | Self::Aes192GcmIv12Tag16NoKdf
            | Self::Aes256GcmIv12Tag16NoKdf => Kdf::Identity,
            Self::Aes128GcmIv12Tag16HkdfSha256
            | Self::Aes192GcmIv12Tag16HkdfSha256
            | Self::Aes256GcmIv12Tag16HkdfSha256
            | Self::Aes128GcmIv12Tag16HkdfSha256EcdsaP256 => Kdf::HkdfSha256,
            Self::Aes192GcmIv12Tag16HkdfSha384EcdsaP384
            | Self::Aes256GcmIv12Tag16HkdfSha384EcdsaP384 => Kdf::HkdfSha384,
            Self::Aes256GcmHkdfSha512CommitKey | Self::Aes256GcmHkdfSha512CommitKeyEcdsaP384 => {
                Kdf::HkdfSha512Commit
            }
        }
    }

    /// Signature algorithm, for signed suites.
    pub const fn signature(self) -> Option<SignatureAlgorithm> {
        match self {
            Self::Aes128GcmIv12Tag16HkdfSha256EcdsaP256 => {
                Some(SignatureAlgorithm::EcdsaP256Sha256)
            }
            Self::Aes192GcmIv12Tag16HkdfSha384EcdsaP384
            | Self::Aes256GcmIv12Tag16HkdfSha384EcdsaP384
            | Self::Aes256GcmHkdfSha512CommitKeyEcdsaP384 => {
                Some(SignatureAlgorithm::EcdsaP384Sha384)
            }
            _ => None,
        }
    }

    /// Whether the suite commits to its data key (message format 2).
    pub const fn is_committing(self) -> bool {
        matches!(
            self,
            Self::Aes256GcmHkdfSha512CommitKey | Self::Aes256GcmHkdfSha512CommitKeyEcdsaP384
        )
    }

    /// Length of the message id: 16 bytes in v1, 32 in v2.
    pub const fn message_id_len(self) -> usize {
        if self.is_committing() {
            32
        } else {
            16
        }
    }

    /// Short human name, e.g. `AES-256-GCM HKDF-SHA512 commit`.
    pub const fn description(self) -> &'static str {
        match self {
            Self::Aes128GcmIv12Tag16NoKdf => "AES-128-GCM, no KDF (legacy)",
            Self::Aes192GcmIv12Tag16NoKdf => "AES-192-GCM, no KDF (legacy)",
            Self::Aes256GcmIv12Tag16NoKdf => "AES-256-GCM, no KDF (legacy)",
            Self::Aes128GcmIv12Tag16HkdfSha256 => "AES-128-GCM, HKDF-SHA256 (legacy)",
            Self::Aes192GcmIv12Tag16HkdfSha256 => "AES-192-GCM, HKDF-SHA256 (legacy)",
            Self::Aes256GcmIv12Tag16HkdfSha256 => "AES-256-GCM, HKDF-SHA256 (legacy)",
            Self::Aes128GcmIv12Tag16HkdfSha256EcdsaP256 => {
                "AES-128-GCM, HKDF-SHA256, ECDSA P-256 (legacy)"
            }
            Self::Aes192GcmIv12Tag16HkdfSha384EcdsaP384 => {
                "AES-192-GCM, HKDF-SHA384, ECDSA P-384 (legacy)"
            }
            Self::Aes256GcmIv12Tag16HkdfSha384EcdsaP384 => {
                "AES-256-GCM, HKDF-SHA384, ECDSA P-384 (legacy)"
            }
            Self::Aes256GcmHkdfSha512CommitKey => "AES-256-GCM, HKDF-SHA512, key commitment",
            Self::Aes256GcmHkdfSha512CommitKeyEcdsaP384 => {
                "AES-256-GCM, HKDF-SHA512, key commitment, ECDSA P-384"
            }
        }
    }
}

/// Which suites may be used (ESDK `framework/commitment-policy.md`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CommitmentPolicy {
    /// Encrypt with committing suites only; decrypt committing suites only (the default).
    #[default]
    RequireEncryptRequireDecrypt,
    /// Encrypt with committing suites only; decrypt legacy suites too.
    RequireEncryptAllowDecrypt,
}

impl CommitmentPolicy {
    /// Check that a message with `suite` may be decrypted under this policy.
    pub fn check_decrypt(self, suite: AlgorithmSuite) -> Result<()> {
        match self {
            Self::RequireEncryptRequireDecrypt if !suite.is_committing() => {
                Err(Error::CommitmentPolicy(suite.id()))
            }
            _ => Ok(()),
        }
    }

    /// Check that `suite` may be used to encrypt under this policy.
    pub fn check_encrypt(self, suite: AlgorithmSuite) -> Result<()> {
        if suite.is_committing() {
            Ok(())
        } else {
            Err(Error::CommitmentPolicy(suite.id()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_foreign_ids_fail() {
        for s in AlgorithmSuite::ALL {
            assert_eq!(AlgorithmSuite::from_id(s.id()).unwrap(), s);
        }
        for bad in [0x0000, 0x0070, 0x0072, 0x6700, 0x6701, 0xffff, 0x0479] {
            assert!(
                matches!(AlgorithmSuite::from_id(bad), Err(Error::UnknownSuite(i)) if i == bad)
            );
        }
    }

    #[test]
    fn policy() {
        let legacy = AlgorithmSuite::Aes256GcmIv12Tag16HkdfSha256;
        let commit = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;
        assert!(CommitmentPolicy::default().check_decrypt(legacy).is_err());
        assert!(CommitmentPolicy::default().check_decrypt(commit).is_ok());
        assert!(CommitmentPolicy::RequireEncryptAllowDecrypt
            .check_decrypt(legacy)
            .is_ok());
        assert!(CommitmentPolicy::RequireEncryptAllowDecrypt
            .check_encrypt(legacy)
            .is_err());
    }
}
