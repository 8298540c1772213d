//! [`Client`]: encrypt and decrypt messages with the keys of one key manager. A
//! [`crate::Session`] hands out clients; tests and embedders may build one directly.

use std::collections::BTreeSet;
use std::io::{Read, Write};

use hyok_core::{
    AlgorithmSuite, CommitmentPolicy, DecryptOptions, Decryptor, EncryptOptions, EncryptionContext,
    EncryptionMaterials, Encryptor, HeaderLimits, ParsedHeader, PendingEncryption, VerifiedHeader,
    RESERVED_PREFIX,
};
use hyok_keystore::{KeyManager, OpLabel};

use crate::policy::{Action, Guard};
use crate::{audit, Error, Result};

/// Settings of a [`Client`].
#[derive(Clone, Debug)]
pub struct Settings {
    /// Suite used for new messages (committing).
    pub suite: AlgorithmSuite,
    /// Frame length and parallelism of new messages.
    pub encrypt: EncryptOptions,
    /// Which suites may be decrypted.
    pub policy: CommitmentPolicy,
    /// Limits on untrusted headers (maximum EDKs).
    pub limits: HeaderLimits,
    /// Body reading options.
    pub decrypt: DecryptOptions,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            suite: AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
            encrypt: EncryptOptions::default(),
            policy: CommitmentPolicy::default(),
            limits: HeaderLimits::default(),
            decrypt: DecryptOptions::default(),
        }
    }
}

/// Encrypts and decrypts messages with the keys of one key manager.
#[derive(Clone, Debug)]
pub struct Client {
    keys: KeyManager,
    settings: Settings,
    guard: Option<Guard>,
}

impl Client {
    /// A client with default settings (suite 0x0478, 64 KiB frames, all cores,
    /// REQUIRE_ENCRYPT_REQUIRE_DECRYPT).
    pub fn new(keys: KeyManager) -> Self {
        Self {
            keys,
            settings: Settings::default(),
            guard: None,
        }
    }

    /// Ask `guard` before every key use (`encrypt`, `decrypt`); a session attaches its own.
    pub fn with_guard(mut self, guard: Option<Guard>) -> Self {
        self.guard = guard;
        self
    }

    /// The policy decision point, when policies are configured.
    pub fn guard(&self) -> Option<&Guard> {
        self.guard.as_ref()
    }

    /// Replace the settings.
    pub fn with_settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The key manager.
    pub fn keys(&self) -> &KeyManager {
        &self.keys
    }

    /// Record one message operation in the audit log, if one is attached (the key uses
    /// of the message are recorded by the key manager itself).
    pub fn record_message(&self, event: audit::MessageEvent) {
        self.keys.record_message(event);
    }

    /// Record a key lifecycle step or policy refusal in the audit log, if one is attached.
    pub fn record_admin(&self, event: audit::AdminEvent) {
        self.keys.record_admin(event);
    }

    /// Key step of encryption: fix the context, have the key stores produce a data key and
    /// its EDKs. `required` names context keys authenticated but not stored in the header.
    /// `plaintext_len` (or `u64::MAX` when unknown) lets a data-key cache count bytes.
    pub async fn encryption_materials(
        &self,
        context: &EncryptionContext,
        required: &BTreeSet<String>,
        plaintext_len: u64,
        label: &OpLabel,
    ) -> Result<EncryptionMaterials> {
        if let Some((k, _)) = context.iter().find(|(k, _)| k.starts_with(RESERVED_PREFIX)) {
            return Err(Error::ReservedContextKey(k.to_owned()));
        }
        if let Some(g) = &self.guard {
            g.check(
                Action::Encrypt,
                None,
                context,
                Some(self.settings.suite.id()),
            )?;
        }
        let pending =
            PendingEncryption::new(self.settings.suite, context.clone(), required.clone())?;
        let mut label = label.clone();
        label.message_id = Some(pending.message_id().to_vec());
        let (dk, edks) = self
            .keys
            .encryption_materials(pending.suite(), pending.context(), plaintext_len, &label)
            .await?;
        Ok(pending.complete(dk, edks)?)
    }

    /// Streaming step of encryption: writes the header to `out` and returns the body writer.
    pub fn encryptor<W: Write>(
        &self,
        out: W,
        materials: EncryptionMaterials,
    ) -> Result<Encryptor<W>> {
        Ok(Encryptor::new(
            out,
            materials,
            self.settings.encrypt.clone(),
        )?)
    }

    /// Read a header from `input` under this client's limits.
    pub fn read_header<R: Read>(&self, input: &mut R) -> Result<ParsedHeader> {
        Ok(ParsedHeader::read(input, self.settings.limits)?)
    }

    /// Key step of decryption: check the commitment policy, unwrap one EDK, verify the key
    /// commitment and header tag. `reproduced` pairs must match the stored context or are
    /// supplied as authenticated-but-not-stored pairs.
    pub async fn open(
        &self,
        parsed: ParsedHeader,
        reproduced: &EncryptionContext,
        label: &OpLabel,
    ) -> Result<VerifiedHeader> {
        let h = &parsed.header;
        self.settings.policy.check_decrypt(h.suite)?;
        let (materials_ctx, auth_only) = parsed.materials_context(reproduced)?;
        if let Some(g) = &self.guard {
            g.check(Action::Decrypt, None, &materials_ctx, Some(h.suite.id()))?;
        }
        let mut label = label.clone();
        label.message_id = Some(h.message_id.clone());
        let result = match self
            .keys
            .decrypt_data_key(h.suite, &h.edks, &materials_ctx, &label)
            .await
        {
            Ok(dk) => parsed.verify(&dk, reproduced).map_err(Error::from),
            Err(e) => Err(Error::from(e)),
        };
        // Pairs the message does not store were taken as required-but-not-stored; when the
        // message does not open, they are the first suspect: name them.
        match result {
            Err(e)
                if !auth_only.is_empty()
                    && matches!(
                        e.class(),
                        crate::ErrorClass::UnwrapFailed
                            | crate::ErrorClass::WrongKey
                            | crate::ErrorClass::HeaderAuth
                    ) =>
            {
                Err(Error::ContextNotInMessage {
                    keys: auth_only.iter().map(|(k, _)| k.to_owned()).collect(),
                    source: Box::new(e),
                })
            }
            other => other,
        }
    }

    /// Streaming step of decryption: a reader of verified plaintext.
    pub fn decryptor<R: Read>(&self, verified: VerifiedHeader, input: R) -> Decryptor<R> {
        verified.decryptor(input, self.settings.decrypt.clone())
    }
}
