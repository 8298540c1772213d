//! k-of-n custody: the data key is split with Shamir's scheme over GF(2^8) (the `vsss-rs`
//! crate) into n shares; share i is wrapped by key group i (one or more keys, any of which
//! opens it, as SOPS key groups). Any k groups recover the data key; fewer learn nothing
//! about it (Shamir's scheme is information-theoretically hiding below the threshold).
//!
//! The whole split travels in **one** EDK (provider id [`PROVIDER_ID`]), so it fits the
//! one-EDK-per-key contract of [`KeyStore`] and the ESDK header; FORMAT.md has the layout:
//!
//! ```text
//! 01 ‖ k (1) ‖ n (1) ‖ count (1) ‖ count × entry
//! entry = group (1, 1..=n) ‖ share x (1) ‖ u16 len ‖ provider id ‖ u16 len ‖ provider info
//!         ‖ u16 len ‖ wrapped share (the inner EDK of the group key that wrapped it)
//! ```
//!
//! Each share's y-bytes (as long as the data key) are wrapped by the group's keys through
//! their own `KeyManager` (so every key-store call is audited), under the message's context
//! plus `hyok-share = "GROUP/N/K"`, which key stores that bind context (AES keys) bind as
//! well: a share cannot be moved to another group or another split. No new AES-GCM use is
//! introduced here: shares are wrapped by the key stores' own mechanisms. A wrong
//! combination of shares yields a wrong data key, which the message's key commitment
//! refuses.

use async_trait::async_trait;
use hyok_core::{DataKey, EncryptedDataKey, EncryptionContext};
use vsss_rs::Gf256;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keyring::{KeyManager, OpLabel};
use crate::store::{KeyGroups, KeyInfo, KeyStore, WrapRequest};

/// The EDK provider id of a k-of-n split.
pub const PROVIDER_ID: &str = "hyok-threshold";
/// Most key groups one split may have.
pub const MAX_GROUPS: usize = 32;
const FORMAT_VERSION: u8 = 1;
const SHARE_CONTEXT_KEY: &str = "hyok-share";

/// The system CSPRNG (aws-lc) for `vsss-rs`'s polynomial coefficients.
struct AwsLcRng;

impl rand_core::TryRng for AwsLcRng {
    type Error = core::convert::Infallible;

    fn try_next_u32(&mut self) -> std::result::Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> std::result::Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> std::result::Result<(), Self::Error> {
        // AWS-LC's RAND_bytes aborts the process rather than return failure, so this
        // cannot fail in practice; a failure here must never yield predictable shares.
        if aws_lc_rs::rand::fill(dst).is_err() {
            panic!("the system random number generator failed");
        }
        Ok(())
    }
}

impl rand_core::TryCryptoRng for AwsLcRng {}

/// A k-of-n split of each data key across key groups.
pub struct ThresholdKey {
    info: KeyInfo,
    threshold: usize,
    groups: Vec<KeyManager>,
}

impl std::fmt::Debug for ThresholdKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThresholdKey")
            .field("info", &self.info)
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

fn share_context(base: &EncryptionContext, group: usize, n: usize, k: usize) -> EncryptionContext {
    let mut ctx = base.clone();
    ctx.insert(SHARE_CONTEXT_KEY, format!("{group}/{n}/{k}"));
    ctx
}

/// `[A | B] [C]`: the key URIs of each group, for a key's URI (and so for cache ids).
fn describe(groups: &[KeyManager]) -> String {
    let described: Vec<String> = groups
        .iter()
        .map(|g| {
            let keys: Vec<String> = g
                .keyring()
                .keys()
                .iter()
                .map(|k| k.info().uri.to_string())
                .collect();
            format!("[{}]", keys.join(" | "))
        })
        .collect();
    described.join(" ")
}

impl ThresholdKey {
    /// `threshold` of `groups` (each a manager of one or more keys, any of which opens that
    /// group's share) must take part to recover a data key. `name` is recorded in the EDK.
    pub fn new(name: &str, threshold: usize, groups: Vec<KeyManager>) -> Result<Self> {
        crate::fips::refuse_threshold()?;
        let n = groups.len();
        if threshold < 2 || threshold > n || n > MAX_GROUPS {
            return Err(Error::Config(format!(
                "a k-of-n keyring needs 2 <= k <= n <= {MAX_GROUPS}; got k = {threshold}, n = {n}{}",
                if threshold == 1 {
                    " (for any-one-of, list the keys without a threshold)"
                } else {
                    ""
                }
            )));
        }
        Ok(Self {
            info: KeyInfo {
                backend: "threshold",
                uri: format!("threshold:{threshold}-of-{n} {}", describe(&groups)).into(),
                provider_id: PROVIDER_ID.into(),
                key_name: name.into(),
            },
            threshold,
            groups,
        })
    }

    /// A decrypt-only opener: every manager in `keys` is tried on every share, whatever group
    /// it was written for (the reader need not know the grouping). Cannot wrap.
    pub fn opener(name: &str, keys: Vec<KeyManager>) -> Self {
        Self {
            info: KeyInfo {
                backend: "threshold",
                // The keys are named: a keyring's cache id is made from its URIs, and
                // openers with different keys must not share cached data keys.
                uri: format!("threshold:{name} opening with {}", describe(&keys)).into(),
                provider_id: PROVIDER_ID.into(),
                key_name: name.into(),
            },
            threshold: 0,
            groups: keys,
        }
    }

    fn label(&self) -> OpLabel {
        OpLabel {
            message_id: None,
            subject: Some(format!("share of {}", self.info.key_name)),
        }
    }
}

#[async_trait]
impl KeyStore for ThresholdKey {
    fn info(&self) -> &KeyInfo {
        &self.info
    }

    fn can_wrap(&self) -> bool {
        self.threshold >= 2
    }

    fn key_groups(&self) -> Option<KeyGroups> {
        Some(KeyGroups {
            needed: (self.threshold >= 2).then_some(self.threshold),
            groups: self
                .groups
                .iter()
                .map(|g| g.keyring().keys().to_vec())
                .collect(),
        })
    }

    async fn wrap(&self, data_key: &DataKey, req: WrapRequest<'_>) -> Result<EncryptedDataKey> {
        if !self.can_wrap() {
            return Err(Error::Unsupported {
                key: self.info.uri.to_string(),
                detail: "a threshold opener only decrypts".into(),
            });
        }
        let n = self.groups.len();
        let k = self.threshold;
        let shares = Gf256::split_bytes(k, n, data_key.expose(), AwsLcRng)
            .map_err(|e| Error::Config(format!("splitting the data key failed: {e:?}")))?;
        let shares: Vec<Zeroizing<Vec<u8>>> = shares.into_iter().map(Zeroizing::new).collect();
        let mut out = vec![FORMAT_VERSION, k as u8, n as u8, 0];
        let mut count = 0usize;
        for (i, (group, share)) in self.groups.iter().zip(&shares).enumerate() {
            let ctx = share_context(req.context, i + 1, n, k);
            let y = DataKey::from_slice(&share[1..]);
            let edks = group
                .wrap_existing(&y, req.suite, &ctx, &self.label())
                .await?;
            for edk in edks {
                out.push((i + 1) as u8);
                out.push(share[0]);
                for field in [
                    edk.provider_id.as_bytes(),
                    &edk.provider_info,
                    &edk.ciphertext,
                ] {
                    let len = u16::try_from(field.len()).map_err(|_| {
                        Error::Config("a wrapped share is larger than 65535 bytes".into())
                    })?;
                    out.extend_from_slice(&len.to_be_bytes());
                    out.extend_from_slice(field);
                }
                count += 1;
            }
        }
        out[3] = u8::try_from(count)
            .map_err(|_| Error::Config("more than 255 wrapped shares in one split".into()))?;
        if out.len() > u16::MAX as usize {
            return Err(Error::Config(
                "the k-of-n data key is larger than an EDK may be (65535 bytes): use fewer keys"
                    .into(),
            ));
        }
        Ok(EncryptedDataKey {
            provider_id: PROVIDER_ID.into(),
            provider_info: self.info.key_name.as_bytes().to_vec(),
            ciphertext: out,
        })
    }

    async fn unwrap(
        &self,
        edk: &EncryptedDataKey,
        req: WrapRequest<'_>,
    ) -> Result<Option<DataKey>> {
        if edk.provider_id != PROVIDER_ID {
            return Ok(None);
        }
        crate::fips::refuse_threshold()?;
        let split = Split::parse(&edk.ciphertext).ok_or_else(|| Error::UnwrapFailed {
            key: format!(
                "{PROVIDER_ID}/{}",
                String::from_utf8_lossy(&edk.provider_info)
            ),
        })?;
        let mut have: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        let mut opened_groups = Vec::new();
        let mut first_error = None;
        for entry in &split.entries {
            if opened_groups.contains(&entry.group) {
                continue;
            }
            let ctx = share_context(req.context, entry.group as usize, split.n, split.k);
            let inner = std::slice::from_ref(&entry.edk);
            for manager in &self.groups {
                match manager
                    .decrypt_data_key(req.suite, inner, &ctx, &self.label())
                    .await
                {
                    Ok(y) => {
                        let mut share = Zeroizing::new(Vec::with_capacity(y.len() + 1));
                        share.push(entry.x);
                        share.extend_from_slice(y.expose());
                        have.push(share);
                        opened_groups.push(entry.group);
                        break;
                    }
                    Err(Error::NoMatchingKey { .. }) => {}
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            if have.len() == split.k {
                break;
            }
        }
        if have.len() < split.k {
            return Err(Error::InsufficientShares {
                key: format!(
                    "{PROVIDER_ID}/{}",
                    String::from_utf8_lossy(&edk.provider_info)
                ),
                have: have.len(),
                need: split.k,
                detail: first_error.map(|e| e.to_string()).unwrap_or_default(),
            });
        }
        let shares: Vec<Vec<u8>> = have.iter().map(|s| s.to_vec()).collect();
        let secret = Gf256::combine_bytes(&shares);
        for mut s in shares {
            zeroize::Zeroize::zeroize(&mut s);
        }
        let secret = Zeroizing::new(secret.map_err(|_| Error::UnwrapFailed {
            key: self.info.uri.to_string(),
        })?);
        Ok(Some(DataKey::from_slice(&secret)))
    }
}

struct Entry {
    group: u8,
    x: u8,
    edk: EncryptedDataKey,
}

struct Split {
    k: usize,
    n: usize,
    entries: Vec<Entry>,
}

impl Split {
    /// Parse the EDK ciphertext strictly: known version, 2 <= k <= n <= MAX_GROUPS, groups in
    /// 1..=n, nonzero share x, no trailing bytes.
    fn parse(b: &[u8]) -> Option<Self> {
        let (&[version, k, n, count], mut rest) = b.split_first_chunk::<4>()?;
        let (k, n) = (k as usize, n as usize);
        if version != FORMAT_VERSION || k < 2 || k > n || n > MAX_GROUPS {
            return None;
        }
        let mut entries = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let (&[group, x], r) = rest.split_first_chunk::<2>()?;
            rest = r;
            if group == 0 || group as usize > n || x == 0 {
                return None;
            }
            let mut fields: [Vec<u8>; 3] = Default::default();
            for f in &mut fields {
                let (len, r) = rest.split_first_chunk::<2>()?;
                let len = u16::from_be_bytes(*len) as usize;
                if r.len() < len {
                    return None;
                }
                *f = r[..len].to_vec();
                rest = &r[len..];
            }
            let [pid, info, ct] = fields;
            entries.push(Entry {
                group,
                x,
                edk: EncryptedDataKey {
                    provider_id: String::from_utf8(pid).ok()?,
                    provider_info: info,
                    ciphertext: ct,
                },
            });
        }
        rest.is_empty().then_some(Self { k, n, entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_splits_are_refused() {
        let good = {
            let mut v = vec![1, 2, 3, 1, 1, 1];
            for f in [&b"p"[..], b"i", b"c"] {
                v.extend_from_slice(&(f.len() as u16).to_be_bytes());
                v.extend_from_slice(f);
            }
            v
        };
        assert!(Split::parse(&good).is_some());
        for i in 0..good.len() {
            assert!(Split::parse(&good[..i]).is_none(), "truncated at {i}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(Split::parse(&trailing).is_none());
        for (at, value) in [(0, 2), (1, 1), (1, 4), (2, 33), (4, 0), (4, 4), (5, 0)] {
            let mut bad = good.clone();
            bad[at] = value;
            assert!(Split::parse(&bad).is_none(), "byte {at} = {value}");
        }
    }
}

#[cfg(test)]
mod property {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any k of n shares recombine to the key; k-1 shares give a different key (never a
        /// panic), so a message's key commitment refuses it.
        #[test]
        fn k_shares_recover_and_fewer_do_not(
            n in 2usize..=10,
            k_off in 0usize..9,
            secret in proptest::collection::vec(any::<u8>(), 32),
            pick in proptest::collection::vec(any::<prop::sample::Index>(), 10),
        ) {
            let k = 2 + k_off % (n - 1);
            let shares = Gf256::split_bytes(k, n, &secret, AwsLcRng).unwrap();
            prop_assert_eq!(shares.len(), n);
            // A pseudo-random subset of k shares.
            let mut idx: Vec<usize> = (0..n).collect();
            for (i, p) in pick.iter().enumerate().take(n) {
                idx.swap(i, i + p.index(n - i));
            }
            let chosen: Vec<Vec<u8>> = idx[..k].iter().map(|&i| shares[i].clone()).collect();
            prop_assert_eq!(Gf256::combine_bytes(&chosen).unwrap(), secret.clone());
            let fewer = &chosen[..k - 1];
            match Gf256::combine_bytes(fewer) {
                Ok(wrong) => prop_assert_ne!(wrong, secret.clone()),
                Err(_) => prop_assert_eq!(k, 2, "only a single share is refused outright"),
            }
        }
    }
}
