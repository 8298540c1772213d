//! Encryption context (ESDK spec `framework/structures.md#encryption-context`).

use std::collections::BTreeMap;

use crate::codec::{put_u16, put_var16};
use crate::error::{Error, Result};

/// Key under which signed suites carry the message's ECDSA verification key.
pub const PUBLIC_KEY_FIELD: &str = "aws-crypto-public-key";
/// Prefix reserved for the SDK itself; callers may not use it.
pub const RESERVED_PREFIX: &str = "aws-crypto-";

/// Authenticated, non-secret key/value pairs bound to a message.
///
/// Keys are kept sorted by their UTF-8 bytes, which is the order the serialization needs
/// (`String`'s ordering is bytewise).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EncryptionContext(BTreeMap<String, String>);

impl EncryptionContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Insert a pair, returning the previous value.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) -> Option<String> {
        self.0.insert(key.into(), value.into())
    }

    /// Value for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Remove `key`.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.0.remove(key)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Pairs in serialization order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Union of two contexts; fails when a key has different values.
    pub fn merged(&self, other: &Self) -> Result<Self> {
        let mut out = self.clone();
        for (k, v) in other.iter() {
            match out.get(k) {
                Some(existing) if existing != v => {
                    return Err(Error::Context(format!("key {k:?} has conflicting values")))
                }
                _ => {
                    out.insert(k, v);
                }
            }
        }
        Ok(out)
    }

    /// Fail when a caller-supplied context uses the reserved `aws-crypto-` prefix.
    pub fn check_no_reserved_keys(&self) -> Result<()> {
        match self.0.keys().find(|k| k.starts_with(RESERVED_PREFIX)) {
            Some(k) => Err(Error::Context(format!(
                "key {k:?} uses the reserved prefix {RESERVED_PREFIX:?}"
            ))),
            None => Ok(()),
        }
    }

    /// Serialize (spec `structures.md#serialization`): empty context → no bytes; otherwise
    /// `count ‖ (len ‖ key ‖ len ‖ value)*` sorted by key bytes.
    pub fn serialize(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        if self.0.is_empty() {
            return Ok(out);
        }
        let count = u16::try_from(self.0.len())
            .map_err(|_| Error::Context("more than 65535 pairs".into()))?;
        put_u16(&mut out, count);
        for (k, v) in &self.0 {
            put_var16(&mut out, k.as_bytes(), "encryption context key")?;
            put_var16(&mut out, v.as_bytes(), "encryption context value")?;
        }
        if out.len() > u16::MAX as usize {
            return Err(Error::Context(
                "serialized context longer than 65535 bytes".into(),
            ));
        }
        Ok(out)
    }

    /// Parse a serialized context (the header's AAD field). Rejects duplicate keys, invalid
    /// UTF-8, a zero count with data, and trailing bytes.
    pub fn deserialize(bytes: &[u8]) -> Result<Self> {
        let bad = |m: &str| Error::MalformedHeader(format!("encryption context: {m}"));
        let mut ctx = Self::new();
        if bytes.is_empty() {
            return Ok(ctx);
        }
        let mut p = bytes;
        let mut take = |n: usize| -> Result<&[u8]> {
            if p.len() < n {
                return Err(bad("field runs past its end"));
            }
            let (a, b) = p.split_at(n);
            p = b;
            Ok(a)
        };
        let count = u16::from_be_bytes(take(2)?.try_into().map_err(|_| bad("count"))?);
        if count == 0 {
            return Err(bad("pair count is zero but the field is not empty"));
        }
        for _ in 0..count {
            let kl = u16::from_be_bytes(take(2)?.try_into().map_err(|_| bad("length"))?);
            let k = std::str::from_utf8(take(kl as usize)?)
                .map_err(|_| bad("key is not UTF-8"))?
                .to_owned();
            let vl = u16::from_be_bytes(take(2)?.try_into().map_err(|_| bad("length"))?);
            let v = std::str::from_utf8(take(vl as usize)?)
                .map_err(|_| bad("value is not UTF-8"))?
                .to_owned();
            if ctx.0.insert(k, v).is_some() {
                return Err(bad("duplicate key"));
            }
        }
        if !p.is_empty() {
            return Err(bad("trailing bytes"));
        }
        Ok(ctx)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for EncryptionContext {
    fn from_iter<T: IntoIterator<Item = (K, V)>>(iter: T) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialization_is_sorted_by_bytes_and_round_trips() {
        let ctx: EncryptionContext = [("zeta", "1"), ("B", "2"), ("a", ""), ("ключ", "v")]
            .into_iter()
            .collect();
        let bytes = ctx.serialize().unwrap();
        assert_eq!(&bytes[..2], &[0, 4]);
        assert_eq!(&bytes[2..7], &[0, 1, b'B', 0, 1]);
        let keys: Vec<_> = ctx.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["B", "a", "zeta", "ключ"]);
        assert_eq!(EncryptionContext::deserialize(&bytes).unwrap(), ctx);
        assert!(EncryptionContext::new().serialize().unwrap().is_empty());
    }

    #[test]
    fn malformed_contexts_are_rejected() {
        for bad in [
            &[0u8, 0][..],
            &[0, 1, 0, 1, b'a'],
            &[0, 1, 0, 1, b'a', 0, 1, b'b', 9],
            &[0, 2, 0, 1, b'a', 0, 0, 0, 1, b'a', 0, 0],
            &[0, 1, 0, 1, 0xff, 0, 0],
            &[0],
        ] {
            assert!(EncryptionContext::deserialize(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reserved_prefix_and_merge() {
        let a: EncryptionContext = [("aws-crypto-x", "1")].into_iter().collect();
        assert!(a.check_no_reserved_keys().is_err());
        let b: EncryptionContext = [("k", "1")].into_iter().collect();
        let c: EncryptionContext = [("k", "2")].into_iter().collect();
        assert!(b.merged(&c).is_err());
        assert_eq!(b.merged(&a).unwrap().len(), 2);
    }
}
