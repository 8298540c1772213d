//! A fast writer for record lines: the same bytes `serde_json` writes for a [`Record`]
//! (tested below), without building the owned record, with the per-process fields
//! rendered once. The log writer spends most of its time here.

use crate::line::{Op, Outcome, Record};
use crate::merkle::Hash;
use crate::time::Timestamp;

/// Borrowed fields of one record.
pub(crate) struct RecordView<'a> {
    pub(crate) seq: u64,
    pub(crate) time: Timestamp,
    pub(crate) op: Op,
    pub(crate) outcome: Outcome,
    pub(crate) error: Option<&'a str>,
    pub(crate) key: Option<&'a str>,
    pub(crate) keys: &'a [&'a str],
    pub(crate) backend: Option<&'a str>,
    pub(crate) suite: Option<&'a str>,
    pub(crate) ctx_sha256: Option<&'a Hash>,
    pub(crate) edk_sha256: Option<&'a Hash>,
    pub(crate) message_id: Option<&'a [u8]>,
    pub(crate) subject: Option<&'a str>,
    pub(crate) bytes: Option<u64>,
    pub(crate) detail: Option<&'a str>,
    pub(crate) torn_offset: Option<u64>,
    pub(crate) torn_len: Option<u64>,
    pub(crate) torn_sha256: Option<&'a Hash>,
    pub(crate) duration_us: u64,
    /// `,"host":…,"user":…[,"uid":…],"pid":…[,"identity":…]`, see [`who_fragment`].
    pub(crate) who: &'a [u8],
    pub(crate) prev: &'a Hash,
}

/// The per-process part of every record, rendered once.
pub(crate) fn who_fragment(
    host: &str,
    user: &str,
    uid: Option<u32>,
    pid: u32,
    identity: Option<&str>,
) -> Vec<u8> {
    let mut b = Vec::with_capacity(128);
    b.extend_from_slice(b",\"host\":");
    string(&mut b, host);
    b.extend_from_slice(b",\"user\":");
    string(&mut b, user);
    if let Some(u) = uid {
        b.extend_from_slice(b",\"uid\":");
        number(&mut b, u64::from(u));
    }
    b.extend_from_slice(b",\"pid\":");
    number(&mut b, u64::from(pid));
    if let Some(i) = identity {
        b.extend_from_slice(b",\"identity\":");
        string(&mut b, i);
    }
    b
}

/// Append the record's JSON line (no newline) to `b`.
pub(crate) fn write_record(b: &mut Vec<u8>, r: &RecordView<'_>) {
    b.extend_from_slice(b"{\"type\":\"record\",\"seq\":");
    number(b, r.seq);
    b.extend_from_slice(b",\"time\":\"");
    timestamp(b, r.time);
    b.extend_from_slice(b"\",\"op\":\"");
    b.extend_from_slice(r.op.as_str().as_bytes());
    b.extend_from_slice(match r.outcome {
        Outcome::Ok => b"\",\"outcome\":\"ok\"",
        Outcome::Error => b"\",\"outcome\":\"error\"",
    });
    opt_str(b, b",\"error\":", r.error);
    opt_str(b, b",\"key\":", r.key);
    if !r.keys.is_empty() {
        b.extend_from_slice(b",\"keys\":[");
        for (i, k) in r.keys.iter().enumerate() {
            if i > 0 {
                b.push(b',');
            }
            string(b, k);
        }
        b.push(b']');
    }
    opt_str(b, b",\"backend\":", r.backend);
    opt_str(b, b",\"suite\":", r.suite);
    opt_hex(b, b",\"ctx_sha256\":", r.ctx_sha256.map(|h| &h[..]));
    opt_hex(b, b",\"edk_sha256\":", r.edk_sha256.map(|h| &h[..]));
    opt_hex(b, b",\"message_id\":", r.message_id);
    opt_str(b, b",\"subject\":", r.subject);
    opt_num(b, b",\"bytes\":", r.bytes);
    opt_str(b, b",\"detail\":", r.detail);
    opt_num(b, b",\"torn_offset\":", r.torn_offset);
    opt_num(b, b",\"torn_len\":", r.torn_len);
    opt_hex(b, b",\"torn_sha256\":", r.torn_sha256.map(|h| &h[..]));
    b.extend_from_slice(b",\"duration_us\":");
    number(b, r.duration_us);
    b.extend_from_slice(r.who);
    b.extend_from_slice(b",\"prev\":\"");
    hex(b, r.prev);
    b.extend_from_slice(b"\"}");
}

impl Record {
    /// Render with the fast writer (tests compare it with serde's output).
    #[cfg(test)]
    pub(crate) fn fast_json(&self) -> Vec<u8> {
        let who = who_fragment(
            &self.host,
            &self.user,
            self.uid,
            self.pid,
            self.identity.as_deref(),
        );
        let keys: Vec<&str> = self.keys.iter().map(String::as_str).collect();
        let view = RecordView {
            seq: self.seq,
            time: self.time,
            op: self.op,
            outcome: self.outcome,
            error: self.error.as_deref(),
            key: self.key.as_deref(),
            keys: &keys,
            backend: self.backend.as_deref(),
            suite: self.suite.as_deref(),
            ctx_sha256: self.ctx_sha256.as_ref().map(|h| &h.0),
            edk_sha256: self.edk_sha256.as_ref().map(|h| &h.0),
            message_id: self.message_id.as_ref().map(|m| &m.0[..]),
            subject: self.subject.as_deref(),
            bytes: self.bytes,
            detail: self.detail.as_deref(),
            torn_offset: self.torn_offset,
            torn_len: self.torn_len,
            torn_sha256: self.torn_sha256.as_ref().map(|h| &h.0),
            duration_us: self.duration_us,
            who: &who,
            prev: &self.prev.0,
        };
        let mut b = Vec::new();
        write_record(&mut b, &view);
        b
    }
}

fn opt_str(b: &mut Vec<u8>, name: &[u8], v: Option<&str>) {
    if let Some(s) = v {
        b.extend_from_slice(name);
        string(b, s);
    }
}

fn opt_num(b: &mut Vec<u8>, name: &[u8], v: Option<u64>) {
    if let Some(n) = v {
        b.extend_from_slice(name);
        number(b, n);
    }
}

fn opt_hex(b: &mut Vec<u8>, name: &[u8], v: Option<&[u8]>) {
    if let Some(h) = v {
        b.extend_from_slice(name);
        b.push(b'"');
        hex(b, h);
        b.push(b'"');
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Two hex digits for every byte value.
static HEX_PAIRS: [[u8; 2]; 256] = {
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [HEX[i >> 4], HEX[i & 15]];
        i += 1;
    }
    t
};

fn hex(b: &mut Vec<u8>, bytes: &[u8]) {
    b.reserve(bytes.len() * 2);
    for &x in bytes {
        b.extend_from_slice(&HEX_PAIRS[usize::from(x)]);
    }
}

fn number(b: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    b.extend_from_slice(&tmp[i..]);
}

fn digits(b: &mut Vec<u8>, n: i64, width: usize) {
    let mut tmp = [b'0'; 6];
    let mut v = n.unsigned_abs();
    for i in (0..width).rev() {
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    b.extend_from_slice(&tmp[..width]);
}

/// As `Timestamp`'s `Display`: `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
fn timestamp(b: &mut Vec<u8>, t: Timestamp) {
    let (y, mo, d, h, mi, s, us) = t.parts();
    digits(b, y, 4);
    b.push(b'-');
    digits(b, mo, 2);
    b.push(b'-');
    digits(b, d, 2);
    b.push(b'T');
    digits(b, h, 2);
    b.push(b':');
    digits(b, mi, 2);
    b.push(b':');
    digits(b, s, 2);
    b.push(b'.');
    digits(b, us, 6);
    b.push(b'Z');
}

/// A JSON string as serde_json writes it: `"` and `\` and control characters escaped
/// (short forms where JSON has them, else `\u00xx`), everything else as UTF-8.
fn string(b: &mut Vec<u8>, s: &str) {
    b.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &c) in bytes.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        b.extend_from_slice(&bytes[start..i]);
        if esc.is_empty() {
            b.extend_from_slice(b"\\u00");
            b.push(HEX[usize::from(c >> 4)]);
            b.push(HEX[usize::from(c & 15)]);
        } else {
            b.extend_from_slice(esc);
        }
        start = i + 1;
    }
    b.extend_from_slice(&bytes[start..]);
    b.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::{Hex32, HexBytes, Line};

    fn base() -> Record {
        Record {
            seq: 0,
            time: Timestamp::from_micros(0),
            op: Op::Generate,
            outcome: Outcome::Ok,
            error: None,
            key: None,
            keys: vec![],
            backend: None,
            suite: None,
            ctx_sha256: None,
            edk_sha256: None,
            message_id: None,
            subject: None,
            bytes: None,
            detail: None,
            torn_offset: None,
            torn_len: None,
            torn_sha256: None,
            duration_us: 0,
            host: "h".into(),
            user: "u".into(),
            uid: None,
            pid: 1,
            identity: None,
            prev: Hex32::default(),
        }
    }

    #[test]
    fn fast_writer_matches_serde_byte_for_byte() {
        let weird = "q\"uote\\back\nnl\rcr\ttab\u{8}\u{c}\u{1}\u{1f}\u{7f} é 東京 🔑";
        let mut full = base();
        full.seq = u64::MAX;
        full.time = Timestamp::MAX;
        full.op = Op::TornTail;
        full.outcome = Outcome::Error;
        full.error = Some("unwrap-failed".into());
        full.key = Some(weird.into());
        full.keys = vec!["a".into(), weird.into(), String::new()];
        full.backend = Some("raw-aes".into());
        full.suite = Some("0x0478".into());
        full.ctx_sha256 = Some(Hex32([0xab; 32]));
        full.edk_sha256 = Some(Hex32([0x01; 32]));
        full.message_id = Some(HexBytes(vec![0xfe; 16]));
        full.subject = Some(weird.into());
        full.bytes = Some(0);
        full.detail = Some(String::new());
        full.torn_offset = Some(12);
        full.torn_len = Some(1);
        full.torn_sha256 = Some(Hex32([9; 32]));
        full.duration_us = 1234567;
        full.host = weird.into();
        full.user = "root".into();
        full.uid = Some(u32::MAX);
        full.pid = 0;
        full.identity = Some(weird.into());
        full.prev = Hex32([0x5a; 32]);
        let mut early = base();
        early.time = Timestamp::MIN;
        let mut neg = base();
        neg.time = Timestamp::from_micros(-1);
        for r in [base(), full, early, neg] {
            let serde = serde_json::to_vec(&Line::Record(r.clone())).unwrap();
            assert_eq!(
                String::from_utf8(r.fast_json()).unwrap(),
                String::from_utf8(serde).unwrap()
            );
        }
        // And every single control character.
        for c in 0u8..0x20 {
            let mut r = base();
            r.subject = Some(char::from(c).to_string());
            let serde = serde_json::to_vec(&Line::Record(r.clone())).unwrap();
            assert_eq!(r.fast_json(), serde, "char {c:#x}");
        }
    }
}
