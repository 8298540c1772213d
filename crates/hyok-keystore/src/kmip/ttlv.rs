//! KMIP TTLV encoding (KMIP 1.4 spec, section 9.1 "TTLV Encoding"): every item is a 3-byte
//! tag, a 1-byte type, a 4-byte big-endian length and a value padded with zeros to a multiple
//! of 8 bytes. Structures hold a sequence of items.
//!
//! The decoder takes untrusted bytes: it checks every length against what is left and against
//! the fixed sizes of the fixed-size types, limits nesting depth and message size, requires
//! UTF-8 text, and rejects trailing bytes. Byte strings (which carry data keys) are zeroized
//! on drop and never printed.

use std::fmt;

use zeroize::Zeroizing;

/// Largest message we send or accept.
pub(crate) const MAX_MESSAGE: usize = 4 << 20;
/// Deepest nesting of structures we accept.
const MAX_DEPTH: usize = 16;

/// Item types (spec 9.1.1.2).
mod ty {
    pub(super) const STRUCTURE: u8 = 0x01;
    pub(super) const INTEGER: u8 = 0x02;
    pub(super) const LONG_INTEGER: u8 = 0x03;
    pub(super) const BIG_INTEGER: u8 = 0x04;
    pub(super) const ENUMERATION: u8 = 0x05;
    pub(super) const BOOLEAN: u8 = 0x06;
    pub(super) const TEXT_STRING: u8 = 0x07;
    pub(super) const BYTE_STRING: u8 = 0x08;
    pub(super) const DATE_TIME: u8 = 0x09;
    pub(super) const INTERVAL: u8 = 0x0A;
    pub(super) const DATE_TIME_EXTENDED: u8 = 0x0B;
}

/// Why bytes are not a valid TTLV item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TtlvError {
    /// Fewer bytes than the header or length promises.
    Truncated,
    /// Bytes after the item.
    TrailingBytes(usize),
    /// A type byte the spec does not define.
    UnknownType(u8),
    /// A fixed-size type with the wrong length, or a structure length not a multiple of 8.
    BadLength { tag: u32, item_type: u8, len: u32 },
    /// A Boolean other than 0 or 1.
    BadBoolean(u32),
    /// A Text String that is not UTF-8.
    BadUtf8(u32),
    /// Structures nested deeper than allowed.
    TooDeep,
    /// A message larger than allowed.
    TooLarge(usize),
    /// A required item is missing.
    Missing(&'static str),
    /// An item has another type than expected.
    WrongType(&'static str),
}

impl fmt::Display for TtlvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("truncated TTLV item"),
            Self::TrailingBytes(n) => write!(f, "{n} bytes after the TTLV message"),
            Self::UnknownType(t) => write!(f, "unknown TTLV type 0x{t:02x}"),
            Self::BadLength {
                tag,
                item_type,
                len,
            } => write!(
                f,
                "TTLV item 0x{tag:06x} of type 0x{item_type:02x} has invalid length {len}"
            ),
            Self::BadBoolean(v) => write!(f, "TTLV boolean with value {v}"),
            Self::BadUtf8(tag) => write!(f, "TTLV text 0x{tag:06x} is not UTF-8"),
            Self::TooDeep => f.write_str("TTLV structures nested too deeply"),
            Self::TooLarge(n) => write!(f, "TTLV message of {n} bytes is too large"),
            Self::Missing(what) => write!(f, "missing {what}"),
            Self::WrongType(what) => write!(f, "{what} has an unexpected type"),
        }
    }
}

/// An item's value.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Structure(Vec<Ttlv>),
    Integer(i32),
    LongInteger(i64),
    BigInteger(Vec<u8>),
    Enumeration(u32),
    Boolean(bool),
    TextString(String),
    /// Zeroized on drop: Encrypt requests and Decrypt answers carry data keys here.
    ByteString(Zeroizing<Vec<u8>>),
    DateTime(i64),
    Interval(u32),
    DateTimeExtended(i64),
}

/// One TTLV item.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Ttlv {
    /// 24-bit tag (0x42xxxx for KMIP-defined tags).
    pub(crate) tag: u32,
    pub(crate) value: Value,
}

impl fmt::Debug for Ttlv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:06x}=", self.tag)?;
        match &self.value {
            Value::Structure(items) => f.debug_list().entries(items).finish(),
            Value::Integer(v) => write!(f, "Integer({v})"),
            Value::LongInteger(v) => write!(f, "LongInteger({v})"),
            Value::BigInteger(v) => write!(f, "BigInteger({} bytes)", v.len()),
            Value::Enumeration(v) => write!(f, "Enumeration(0x{v:x})"),
            Value::Boolean(v) => write!(f, "Boolean({v})"),
            Value::TextString(v) => write!(f, "Text({v:?})"),
            Value::ByteString(v) => write!(f, "Bytes({} bytes, redacted)", v.len()),
            Value::DateTime(v) => write!(f, "DateTime({v})"),
            Value::Interval(v) => write!(f, "Interval({v})"),
            Value::DateTimeExtended(v) => write!(f, "DateTimeExtended({v})"),
        }
    }
}

fn padded(len: usize) -> usize {
    len.div_ceil(8) * 8
}

impl Ttlv {
    pub(crate) fn structure(tag: u32, items: Vec<Self>) -> Self {
        Self {
            tag,
            value: Value::Structure(items),
        }
    }

    pub(crate) fn int(tag: u32, v: i32) -> Self {
        Self {
            tag,
            value: Value::Integer(v),
        }
    }

    #[cfg(test)]
    pub(crate) fn long(tag: u32, v: i64) -> Self {
        Self {
            tag,
            value: Value::LongInteger(v),
        }
    }

    pub(crate) fn enumeration(tag: u32, v: u32) -> Self {
        Self {
            tag,
            value: Value::Enumeration(v),
        }
    }

    #[cfg(test)]
    pub(crate) fn boolean(tag: u32, v: bool) -> Self {
        Self {
            tag,
            value: Value::Boolean(v),
        }
    }

    pub(crate) fn text(tag: u32, v: impl Into<String>) -> Self {
        Self {
            tag,
            value: Value::TextString(v.into()),
        }
    }

    pub(crate) fn bytes(tag: u32, v: &[u8]) -> Self {
        Self {
            tag,
            value: Value::ByteString(Zeroizing::new(v.to_vec())),
        }
    }

    /// Length of the value before padding.
    fn value_len(&self) -> usize {
        match &self.value {
            Value::Structure(items) => items.iter().map(Self::encoded_len).sum(),
            Value::Integer(_) | Value::Enumeration(_) | Value::Interval(_) => 4,
            Value::LongInteger(_)
            | Value::Boolean(_)
            | Value::DateTime(_)
            | Value::DateTimeExtended(_) => 8,
            Value::BigInteger(v) => v.len(),
            Value::TextString(v) => v.len(),
            Value::ByteString(v) => v.len(),
        }
    }

    /// Bytes this item takes when encoded.
    pub(crate) fn encoded_len(&self) -> usize {
        8 + padded(self.value_len())
    }

    fn type_byte(&self) -> u8 {
        match &self.value {
            Value::Structure(_) => ty::STRUCTURE,
            Value::Integer(_) => ty::INTEGER,
            Value::LongInteger(_) => ty::LONG_INTEGER,
            Value::BigInteger(_) => ty::BIG_INTEGER,
            Value::Enumeration(_) => ty::ENUMERATION,
            Value::Boolean(_) => ty::BOOLEAN,
            Value::TextString(_) => ty::TEXT_STRING,
            Value::ByteString(_) => ty::BYTE_STRING,
            Value::DateTime(_) => ty::DATE_TIME,
            Value::Interval(_) => ty::INTERVAL,
            Value::DateTimeExtended(_) => ty::DATE_TIME_EXTENDED,
        }
    }

    /// Encode into a buffer allocated once at its final size (so no copy of a data key is
    /// left behind by a reallocation) and zeroized on drop.
    pub(crate) fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(self.encoded_len()));
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>) {
        let len = self.value_len();
        out.extend_from_slice(&self.tag.to_be_bytes()[1..]);
        out.push(self.type_byte());
        // Lengths are bounded by MAX_MESSAGE in practice; a longer value cannot be sent anyway.
        out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
        match &self.value {
            Value::Structure(items) => items.iter().for_each(|i| i.write(out)),
            Value::Integer(v) => out.extend_from_slice(&v.to_be_bytes()),
            Value::Enumeration(v) | Value::Interval(v) => out.extend_from_slice(&v.to_be_bytes()),
            Value::LongInteger(v) | Value::DateTime(v) | Value::DateTimeExtended(v) => {
                out.extend_from_slice(&v.to_be_bytes())
            }
            Value::Boolean(v) => out.extend_from_slice(&u64::from(*v).to_be_bytes()),
            Value::BigInteger(v) => out.extend_from_slice(v),
            Value::TextString(v) => out.extend_from_slice(v.as_bytes()),
            Value::ByteString(v) => out.extend_from_slice(v),
        }
        out.resize(out.len() + padded(len) - len, 0);
    }

    /// Decode one whole message: exactly one item and nothing after it.
    pub(crate) fn decode(buf: &[u8]) -> Result<Self, TtlvError> {
        if buf.len() > MAX_MESSAGE {
            return Err(TtlvError::TooLarge(buf.len()));
        }
        let (item, used) = Self::parse(buf, 0)?;
        if used != buf.len() {
            return Err(TtlvError::TrailingBytes(buf.len() - used));
        }
        Ok(item)
    }

    /// Parse the item at the start of `buf`; returns it and the bytes it took (with padding).
    fn parse(buf: &[u8], depth: usize) -> Result<(Self, usize), TtlvError> {
        if depth > MAX_DEPTH {
            return Err(TtlvError::TooDeep);
        }
        let (tag, item_type, len) = header(buf.get(..8).ok_or(TtlvError::Truncated)?)?;
        let len_usize = len as usize;
        let total = 8usize
            .checked_add(padded(len_usize))
            .ok_or(TtlvError::Truncated)?;
        if buf.len() < total {
            return Err(TtlvError::Truncated);
        }
        let raw = &buf[8..8 + len_usize];
        let bad_len = TtlvError::BadLength {
            tag,
            item_type,
            len,
        };
        let fixed = |n: usize| {
            if len_usize == n {
                Ok(())
            } else {
                Err(bad_len.clone())
            }
        };
        let value = match item_type {
            ty::STRUCTURE => {
                if len_usize % 8 != 0 {
                    return Err(bad_len);
                }
                let mut items = Vec::new();
                let mut at = 0;
                while at < raw.len() {
                    let (child, used) = Self::parse(&raw[at..], depth + 1)?;
                    items.push(child);
                    at += used;
                }
                Value::Structure(items)
            }
            ty::INTEGER => {
                fixed(4)?;
                Value::Integer(i32::from_be_bytes(four(raw)))
            }
            ty::ENUMERATION => {
                fixed(4)?;
                Value::Enumeration(u32::from_be_bytes(four(raw)))
            }
            ty::INTERVAL => {
                fixed(4)?;
                Value::Interval(u32::from_be_bytes(four(raw)))
            }
            ty::LONG_INTEGER => {
                fixed(8)?;
                Value::LongInteger(i64::from_be_bytes(eight(raw)))
            }
            ty::DATE_TIME => {
                fixed(8)?;
                Value::DateTime(i64::from_be_bytes(eight(raw)))
            }
            ty::DATE_TIME_EXTENDED => {
                fixed(8)?;
                Value::DateTimeExtended(i64::from_be_bytes(eight(raw)))
            }
            ty::BOOLEAN => {
                fixed(8)?;
                match u64::from_be_bytes(eight(raw)) {
                    0 => Value::Boolean(false),
                    1 => Value::Boolean(true),
                    v => return Err(TtlvError::BadBoolean(v.min(u64::from(u32::MAX)) as u32)),
                }
            }
            ty::BIG_INTEGER => {
                if len_usize % 8 != 0 {
                    return Err(bad_len);
                }
                Value::BigInteger(raw.to_vec())
            }
            ty::TEXT_STRING => Value::TextString(
                std::str::from_utf8(raw)
                    .map_err(|_| TtlvError::BadUtf8(tag))?
                    .to_owned(),
            ),
            ty::BYTE_STRING => Value::ByteString(Zeroizing::new(raw.to_vec())),
            other => return Err(TtlvError::UnknownType(other)),
        };
        Ok((Self { tag, value }, total))
    }

    /// The first child with `tag` (for structures).
    pub(crate) fn child(&self, tag: u32) -> Option<&Self> {
        self.children(tag).next()
    }

    /// All children with `tag` (for structures; none otherwise).
    pub(crate) fn children(&self, tag: u32) -> impl Iterator<Item = &Self> {
        let items: &[Self] = match &self.value {
            Value::Structure(items) => items,
            _ => &[],
        };
        items.iter().filter(move |i| i.tag == tag)
    }

    /// The first child with `tag`, or an error naming `what`.
    pub(crate) fn need(&self, tag: u32, what: &'static str) -> Result<&Self, TtlvError> {
        self.child(tag).ok_or(TtlvError::Missing(what))
    }

    pub(crate) fn as_enum(&self, what: &'static str) -> Result<u32, TtlvError> {
        match self.value {
            Value::Enumeration(v) => Ok(v),
            _ => Err(TtlvError::WrongType(what)),
        }
    }

    pub(crate) fn as_int(&self, what: &'static str) -> Result<i32, TtlvError> {
        match self.value {
            Value::Integer(v) => Ok(v),
            _ => Err(TtlvError::WrongType(what)),
        }
    }

    pub(crate) fn as_text(&self, what: &'static str) -> Result<&str, TtlvError> {
        match &self.value {
            Value::TextString(v) => Ok(v),
            _ => Err(TtlvError::WrongType(what)),
        }
    }

    pub(crate) fn as_bytes(&self, what: &'static str) -> Result<&[u8], TtlvError> {
        match &self.value {
            Value::ByteString(v) => Ok(v),
            _ => Err(TtlvError::WrongType(what)),
        }
    }
}

/// Split an 8-byte item header into tag, type and value length.
pub(crate) fn header(h: &[u8]) -> Result<(u32, u8, u32), TtlvError> {
    if h.len() < 8 {
        return Err(TtlvError::Truncated);
    }
    let tag = u32::from_be_bytes([0, h[0], h[1], h[2]]);
    let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
    Ok((tag, h[3], len))
}

fn four(raw: &[u8]) -> [u8; 4] {
    let mut a = [0u8; 4];
    a.copy_from_slice(&raw[..4]);
    a
}

fn eight(raw: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(&raw[..8]);
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Ttlv {
        Ttlv::structure(
            0x420078,
            vec![
                Ttlv::int(0x42006A, 1),
                Ttlv::long(0x420001, -2),
                Ttlv::enumeration(0x42005C, 0x1F),
                Ttlv::boolean(0x4200C5, true),
                Ttlv::text(0x420055, "héllo"),
                Ttlv::bytes(0x4200C2, &[1, 2, 3]),
                Ttlv {
                    tag: 0x420092,
                    value: Value::DateTime(1_700_000_000),
                },
                Ttlv {
                    tag: 0x420093,
                    value: Value::Interval(7),
                },
                Ttlv {
                    tag: 0x420094,
                    value: Value::BigInteger(vec![0; 8]),
                },
                Ttlv::structure(0x420069, vec![]),
            ],
        )
    }

    #[test]
    fn round_trips() {
        let item = sample();
        let bytes = item.encode();
        assert_eq!(bytes.len() % 8, 0);
        assert_eq!(bytes.len(), item.encoded_len());
        assert_eq!(Ttlv::decode(&bytes).unwrap(), item);
    }

    /// KMIP 1.4 spec 9.1.2 examples (facts of the encoding, typed in by hand).
    #[test]
    fn spec_examples() {
        let cases: Vec<(Ttlv, &str)> =
            vec![
            (Ttlv::int(0x420020, 8), "42002002000000040000000800000000"),
            (
                Ttlv::long(0x420020, 123_456_789_000_000_000),
                "420020030000000801b69b4ba5749200",
            ),
            (Ttlv::enumeration(0x420020, 255), "4200200500000004000000ff00000000"),
            (Ttlv::boolean(0x420020, true), "42002006000000080000000000000001"),
            (
                Ttlv::text(0x420020, "Hello World"),
                "420020070000000b48656c6c6f20576f726c640000000000",
            ),
            (Ttlv::bytes(0x420020, &[1, 2, 3]), "42002008000000030102030000000000"),
            (
                Ttlv::structure(
                    0x420020,
                    vec![Ttlv::enumeration(0x420004, 254), Ttlv::int(0x420005, 255)],
                ),
                "42002001000000204200040500000004000000fe000000004200050200000004000000ff00000000",
            ),
        ];
        for (item, want) in cases {
            let got = hex(&item.encode());
            assert_eq!(got, want, "{item:?}");
            assert_eq!(Ttlv::decode(&unhex(want)).unwrap(), item);
        }
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn malformed_inputs_are_rejected() {
        let good = sample().encode().to_vec();
        // Every truncation fails (and none panics).
        for n in 0..good.len() {
            assert!(
                Ttlv::decode(&good[..n]).is_err(),
                "prefix of {n} bytes accepted"
            );
        }
        // Trailing bytes.
        let mut long = good.clone();
        long.extend_from_slice(&[0; 8]);
        assert_eq!(Ttlv::decode(&long), Err(TtlvError::TrailingBytes(8)));
        // Unknown type.
        assert_eq!(
            Ttlv::decode(&unhex("42002010000000040000000800000000")),
            Err(TtlvError::UnknownType(0x10))
        );
        // Integer with length 8.
        assert!(matches!(
            Ttlv::decode(&unhex("42002002000000080000000800000000")),
            Err(TtlvError::BadLength { .. })
        ));
        // Boolean 2.
        assert_eq!(
            Ttlv::decode(&unhex("42002006000000080000000000000002")),
            Err(TtlvError::BadBoolean(2))
        );
        // Invalid UTF-8 text.
        assert!(matches!(
            Ttlv::decode(&unhex("4200200700000002fffe000000000000")),
            Err(TtlvError::BadUtf8(_))
        ));
        // Structure whose length is not a multiple of 8.
        assert!(matches!(
            Ttlv::decode(&unhex("42002001000000040000000000000000")),
            Err(TtlvError::BadLength { .. })
        ));
        // Structure whose child overruns it.
        assert_eq!(
            Ttlv::decode(&unhex("420020010000000842002002000000040000000800000000")),
            Err(TtlvError::Truncated)
        );
        // A length near u32::MAX.
        assert_eq!(
            Ttlv::decode(&unhex("42002008ffffffff00")),
            Err(TtlvError::Truncated)
        );
        // Deep nesting.
        let mut deep = Ttlv::int(0x420020, 1);
        for _ in 0..=MAX_DEPTH {
            deep = Ttlv::structure(0x420020, vec![deep]);
        }
        assert_eq!(Ttlv::decode(&deep.encode()), Err(TtlvError::TooDeep));
    }

    #[test]
    fn pseudo_random_bytes_never_panic() {
        let good = sample().encode().to_vec();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut m = good.clone();
            let i = (x as usize) % m.len();
            m[i] ^= (x >> 32) as u8 | 1;
            let _ = Ttlv::decode(&m);
            let cut = (x >> 16) as usize % m.len();
            let _ = Ttlv::decode(&m[..cut]);
        }
    }

    #[test]
    fn debug_redacts_byte_strings() {
        let s = format!("{:?}", Ttlv::bytes(0x4200C2, b"secret-key-bytes"));
        assert!(!s.contains("115"), "{s}");
        assert!(s.contains("redacted"));
    }
}
