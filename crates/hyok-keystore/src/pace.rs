//! Pacing of key-store calls: a [`KeyManager`](crate::KeyManager) with a [`Pace`] waits for
//! it before every call it makes to a key store (generate, wrap, unwrap attempt), never
//! before a data-key cache hit. Bulk jobs (`hyok reencrypt --key-rate`) use it to keep an HSM
//! or a Vault cluster that serves production below a rate its operators chose.

use async_trait::async_trait;

/// Something to wait for before each key-store call.
#[async_trait]
pub trait Pace: Send + Sync + std::fmt::Debug {
    /// Return when the next call may start.
    async fn wait(&self);
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use async_trait::async_trait;
    use hyok_core::{AlgorithmSuite, EncryptionContext};

    use super::Pace;
    use crate::cache::{CacheLimits, MemoryCache};
    use crate::testing::random_raw_aes;
    use crate::{KeyManager, Keyring, OpLabel};

    #[derive(Debug, Default)]
    struct Count(AtomicUsize);

    #[async_trait]
    impl Pace for Count {
        async fn wait(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// One wait per key-store call: a generate, an extra wrap per escrow key, an unwrap; none
    /// for a cache hit.
    #[test]
    fn a_wait_before_each_key_store_call_and_none_for_cache_hits() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let pace = Arc::new(Count::default());
        let keys = Keyring::new(vec![
            Arc::new(random_raw_aes("t", "a")),
            Arc::new(random_raw_aes("t", "escrow")),
        ])
        .unwrap();
        let suite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;
        let ctx = EncryptionContext::new();
        let label = OpLabel::default();
        let m = KeyManager::new(keys.clone()).with_pace(pace.clone());
        rt.block_on(async {
            let (_, edks) = m
                .encryption_materials(suite, &ctx, 10, &label)
                .await
                .unwrap();
            assert_eq!(pace.0.load(Ordering::SeqCst), 2, "generate + escrow wrap");
            m.decrypt_data_key(suite, &edks[..1], &ctx, &label)
                .await
                .unwrap();
            assert_eq!(pace.0.load(Ordering::SeqCst), 3, "one unwrap");

            let cached = KeyManager::new(keys)
                .with_cache(Arc::new(MemoryCache::new(CacheLimits::default()).unwrap()))
                .with_pace(pace.clone());
            for _ in 0..5 {
                cached
                    .encryption_materials(suite, &ctx, 10, &label)
                    .await
                    .unwrap();
            }
            assert_eq!(
                pace.0.load(Ordering::SeqCst),
                5,
                "the first encrypt calls the stores twice, the four cache hits not at all"
            );
        });
    }
}
