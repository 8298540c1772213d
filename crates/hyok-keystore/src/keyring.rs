//! The multi-keyring and the key manager: the single place every key use passes.
//!
//! [`Keyring`] is the ESDK multi-keyring: the first key generates the data key, every other
//! key wraps the same key; on decrypt each key is tried on each EDK. [`KeyManager`] puts
//! the data-key cache and the audit sink around it, so a cache hit is recorded exactly like
//! a key store call.

use std::sync::Arc;
use std::time::Instant;

use hyok_core::{AlgorithmSuite, DataKey, EncryptedDataKey, EncryptionContext};

use crate::error::{Error, Result};
use crate::observe::{
    context_hash, edk_hash, AdminEvent, AuditSink, CacheId, DataKeyCache, KeyEvent, KeyOp,
    MessageEvent,
};
use crate::pace::Pace;
use crate::store::{KeyInfo, SharedKeyStore, WrapRequest};

/// One generator key plus any number of extra wrapping keys.
#[derive(Clone, Debug)]
pub struct Keyring {
    keys: Vec<SharedKeyStore>,
    /// Tried on decrypt only, after `keys` (a k-of-n opener made of the same keys).
    openers: Vec<SharedKeyStore>,
}

impl Keyring {
    /// A keyring; the first key is the generator.
    pub fn new(keys: Vec<SharedKeyStore>) -> Result<Self> {
        if keys.is_empty() {
            return Err(Error::Config(
                "at least one key is needed (--key URI)".into(),
            ));
        }
        Ok(Self {
            keys,
            openers: Vec::new(),
        })
    }

    /// Add keys that only decrypt, tried after the keyring's own keys: a k-of-n opener
    /// ([`crate::threshold::ThresholdKey::opener`]) built from the same keys lets a plain
    /// keyring read split messages. They never wrap, so encryption is unchanged.
    pub fn with_openers(mut self, openers: Vec<SharedKeyStore>) -> Self {
        self.openers = openers;
        self
    }

    /// The decrypt-only keys.
    pub fn openers(&self) -> &[SharedKeyStore] {
        &self.openers
    }

    /// Every key decryption tries, in order: the keys, then the openers.
    fn decrypt_keys(&self) -> impl Iterator<Item = &SharedKeyStore> {
        self.keys.iter().chain(&self.openers)
    }

    /// All keys, generator first.
    pub fn keys(&self) -> &[SharedKeyStore] {
        &self.keys
    }

    /// Stable identity of this keyring for cache ids.
    pub fn id(&self) -> String {
        self.keys
            .iter()
            .map(|k| &*k.info().uri)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Who and what an operation is for (for audit records).
#[derive(Clone, Debug, Default)]
pub struct OpLabel {
    /// Message id, when known.
    pub message_id: Option<Vec<u8>>,
    /// File or object name.
    pub subject: Option<String>,
}

/// Keyring + optional cache + optional audit sink.
#[derive(Clone, Debug)]
pub struct KeyManager {
    keyring: Keyring,
    cache: Option<Arc<dyn DataKeyCache>>,
    audit: Option<Arc<dyn AuditSink>>,
    pace: Option<Arc<dyn Pace>>,
}

/// The EDKs of a message for an error message: escaped, each label and the list bounded
/// (they come from an untrusted header).
fn describe_edks(edks: &[EncryptedDataKey]) -> String {
    let mut v: Vec<String> = edks
        .iter()
        .take(8)
        .map(|e| {
            let l = crate::store::edk_label(e);
            match l.char_indices().nth(100) {
                Some((i, _)) => format!("{}…", &l[..i]),
                None => l,
            }
        })
        .collect();
    if edks.len() > 8 {
        v.push(format!("and {} more", edks.len() - 8));
    }
    v.join(", ")
}

impl KeyManager {
    /// A manager without cache or audit.
    pub fn new(keyring: Keyring) -> Self {
        Self {
            keyring,
            cache: None,
            audit: None,
            pace: None,
        }
    }

    /// Wait for `pace` before every key-store call (not before cache hits).
    pub fn with_pace(mut self, pace: Arc<dyn Pace>) -> Self {
        self.pace = Some(pace);
        self
    }

    async fn paced(&self) {
        if let Some(p) = &self.pace {
            p.wait().await;
        }
    }

    /// Put a data-key cache in front of the key stores.
    pub fn with_cache(mut self, cache: Arc<dyn DataKeyCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Record every key use in `sink`.
    pub fn with_audit(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(sink);
        self
    }

    /// The keyring.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// The audit sink, if one is attached.
    pub fn audit(&self) -> Option<&Arc<dyn AuditSink>> {
        self.audit.as_ref()
    }

    /// Hand a message-level event to the audit sink (no-op without one).
    pub fn record_message(&self, event: MessageEvent) {
        if let Some(sink) = &self.audit {
            sink.message(event);
        }
    }

    /// Hand a key lifecycle or policy event to the audit sink (no-op without one).
    pub fn record_admin(&self, event: AdminEvent) {
        if let Some(sink) = &self.audit {
            sink.admin(event);
        }
    }

    /// The context hash that audit records and cache ids use, computed only when one of
    /// them is attached (it serializes and hashes the context on every message). Without
    /// either nothing reads it.
    fn context_hash(&self, context: &EncryptionContext) -> [u8; 32] {
        if self.audit.is_some() || self.cache.is_some() {
            context_hash(context)
        } else {
            [0; 32]
        }
    }

    /// Fail closed: refuse key operations while the audit sink cannot record.
    fn check_audit(&self) -> Result<()> {
        match &self.audit {
            Some(sink) => sink.check().map_err(Error::Audit),
            None => Ok(()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        op: KeyOp,
        key: &KeyInfo,
        suite: AlgorithmSuite,
        ctx_hash: [u8; 32],
        edk: Option<&EncryptedDataKey>,
        label: &OpLabel,
        error: Option<&Error>,
        started: Instant,
    ) {
        if let Some(sink) = &self.audit {
            sink.record(KeyEvent {
                op,
                key: key.clone(),
                suite,
                context_sha256: ctx_hash,
                edk_sha256: edk.map(edk_hash),
                message_id: label.message_id.clone(),
                subject: label.subject.clone(),
                error: error.map(|e| e.class().as_str()),
                duration: started.elapsed(),
            });
        }
    }

    /// Produce a data key and its EDKs for one message of about `plaintext_len` bytes
    /// (`u64::MAX` when unknown, which a bounded cache then refuses).
    pub async fn encryption_materials(
        &self,
        suite: AlgorithmSuite,
        context: &EncryptionContext,
        plaintext_len: u64,
        label: &OpLabel,
    ) -> Result<(DataKey, Vec<EncryptedDataKey>)> {
        self.check_audit()?;
        let ctx_hash = self.context_hash(context);
        let cache_id = self
            .cache
            .as_ref()
            .map(|_| CacheId::for_encrypt(&self.keyring.id(), suite, &ctx_hash));
        if let (Some(cache), Some(id)) = (&self.cache, &cache_id) {
            let started = Instant::now();
            if let Some(hit) = cache.get_encrypt(id, plaintext_len) {
                for (key, edk) in self.keyring.keys.iter().zip(&hit.edks) {
                    self.record(
                        KeyOp::CacheHitEncrypt,
                        key.info(),
                        suite,
                        ctx_hash,
                        Some(edk),
                        label,
                        None,
                        started,
                    );
                }
                return Ok((hit.data_key, hit.edks));
            }
        }
        let req = WrapRequest { suite, context };
        let generator = &self.keyring.keys[0];
        self.paced().await;
        let started = Instant::now();
        let (dk, first) = match generator.generate(req).await {
            Ok(v) => {
                self.record(
                    KeyOp::Generate,
                    generator.info(),
                    suite,
                    ctx_hash,
                    Some(&v.1),
                    label,
                    None,
                    started,
                );
                v
            }
            Err(e) => {
                self.record(
                    KeyOp::Generate,
                    generator.info(),
                    suite,
                    ctx_hash,
                    None,
                    label,
                    Some(&e),
                    started,
                );
                return Err(e);
            }
        };
        let mut edks = vec![first];
        self.wrap_with(
            &self.keyring.keys[1..],
            &dk,
            req,
            ctx_hash,
            label,
            &mut edks,
        )
        .await?;
        if let (Some(cache), Some(id)) = (&self.cache, cache_id) {
            cache.put_encrypt(id, &dk, &edks, plaintext_len);
        }
        Ok((dk, edks))
    }

    /// Wrap `data_key` with each of `keys` in order, recording every call; the first
    /// failure fails the whole operation (ESDK multi-keyring semantics).
    async fn wrap_with(
        &self,
        keys: &[SharedKeyStore],
        data_key: &DataKey,
        req: WrapRequest<'_>,
        ctx_hash: [u8; 32],
        label: &OpLabel,
        edks: &mut Vec<EncryptedDataKey>,
    ) -> Result<()> {
        for key in keys {
            self.paced().await;
            let started = Instant::now();
            let result = key.wrap(data_key, req).await;
            let (edk, err) = match &result {
                Ok(edk) => (Some(edk), None),
                Err(e) => (None, Some(e)),
            };
            self.record(
                KeyOp::Wrap,
                key.info(),
                req.suite,
                ctx_hash,
                edk,
                label,
                err,
                started,
            );
            edks.push(result?);
        }
        Ok(())
    }

    /// Wrap an existing key under every key of this keyring: used to re-wrap branch key
    /// versions when the master keys rotate. Never a way to put a message under new keys:
    /// a second header for one message id would reuse its header tag's GCM nonce (see
    /// "No second header for a message" in docs/DESIGN.md); re-encrypt instead.
    pub async fn wrap_existing(
        &self,
        data_key: &DataKey,
        suite: AlgorithmSuite,
        context: &EncryptionContext,
        label: &OpLabel,
    ) -> Result<Vec<EncryptedDataKey>> {
        let ctx_hash = self.context_hash(context);
        let req = WrapRequest { suite, context };
        let mut edks = Vec::with_capacity(self.keyring.keys.len());
        self.wrap_with(
            &self.keyring.keys,
            data_key,
            req,
            ctx_hash,
            label,
            &mut edks,
        )
        .await?;
        Ok(edks)
    }

    /// Recover the data key of a message: each key (generator first) is tried on each EDK
    /// in order; the first success wins. When none succeeds, the most telling error is
    /// returned: a key's own failure (wrong context, store down) over "no key matched".
    pub async fn decrypt_data_key(
        &self,
        suite: AlgorithmSuite,
        edks: &[EncryptedDataKey],
        context: &EncryptionContext,
        label: &OpLabel,
    ) -> Result<DataKey> {
        self.check_audit()?;
        let ctx_hash = self.context_hash(context);
        let cache_id = self
            .cache
            .as_ref()
            .map(|_| CacheId::for_decrypt(&self.keyring.id(), suite, edks, &ctx_hash));
        if let (Some(cache), Some(id)) = (&self.cache, &cache_id) {
            let started = Instant::now();
            if let Some(hit) = cache.get_decrypt(id) {
                // The key and EDK that unwrapped it (the id covers the keyring and EDKs,
                // so the indices still name them).
                let key = self
                    .keyring
                    .decrypt_keys()
                    .nth(hit.key)
                    .unwrap_or(&self.keyring.keys[0]);
                self.record(
                    KeyOp::CacheHitDecrypt,
                    key.info(),
                    suite,
                    ctx_hash,
                    edks.get(hit.edk),
                    label,
                    None,
                    started,
                );
                return Ok(hit.data_key);
            }
        }
        let req = WrapRequest { suite, context };
        let mut errors: Vec<Error> = Vec::new();
        for (key_index, key) in self.keyring.decrypt_keys().enumerate() {
            for (edk_index, edk) in edks.iter().enumerate() {
                self.paced().await;
                let started = Instant::now();
                match key.unwrap(edk, req).await {
                    Ok(None) => {}
                    Ok(Some(dk)) => {
                        if dk.len() != suite.key_len() {
                            let e = Error::UnwrapFailed {
                                key: key.info().uri.to_string(),
                            };
                            self.record(
                                KeyOp::Unwrap,
                                key.info(),
                                suite,
                                ctx_hash,
                                Some(edk),
                                label,
                                Some(&e),
                                started,
                            );
                            errors.push(e);
                            continue;
                        }
                        self.record(
                            KeyOp::Unwrap,
                            key.info(),
                            suite,
                            ctx_hash,
                            Some(edk),
                            label,
                            None,
                            started,
                        );
                        if let (Some(cache), Some(id)) = (&self.cache, cache_id) {
                            cache.put_decrypt(id, &dk, key_index, edk_index);
                        }
                        return Ok(dk);
                    }
                    Err(e) => {
                        self.record(
                            KeyOp::Unwrap,
                            key.info(),
                            suite,
                            ctx_hash,
                            Some(edk),
                            label,
                            Some(&e),
                            started,
                        );
                        errors.push(e);
                    }
                }
            }
        }
        match errors.into_iter().next() {
            Some(e) => Err(e),
            None => Err(Error::NoMatchingKey {
                edks: describe_edks(edks),
                configured: self
                    .keyring
                    .keys
                    .iter()
                    .map(|k| format!("{}/{}", k.info().provider_id, k.info().key_name))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }
}
