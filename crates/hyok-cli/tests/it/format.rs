//! A small, independent reader of the ESDK message *layout* (no crypto), written for the tests
//! from the format summary: it names every field's byte range so tamper tests can say which
//! field they hit, and lets tests check what the writer put in the header.

use std::ops::Range;

/// One named field of a message and the bytes it occupies.
#[derive(Debug, Clone)]
pub(crate) struct Region {
    pub name: String,
    pub range: Range<usize>,
}

#[derive(Debug, Clone)]
pub(crate) struct Edk {
    pub provider_id: Vec<u8>,
    pub provider_info: Vec<u8>,
}

#[derive(Debug, Clone)]
pub(crate) struct Frame {
    pub sequence: u32,
    pub is_final: bool,
    pub content_len: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub version: u8,
    pub suite: u16,
    pub message_id: Vec<u8>,
    pub context: Vec<(String, String)>,
    pub edks: Vec<Edk>,
    pub content_type: u8,
    pub frame_length: u32,
    pub frames: Vec<Frame>,
    pub regions: Vec<Region>,
}

impl Layout {
    /// The name of the field holding byte `pos`, with the offset inside it.
    pub(crate) fn label(&self, pos: usize) -> String {
        self.regions
            .iter()
            .find(|r| r.range.contains(&pos))
            .map(|r| format!("{}[+{}] (byte {pos})", r.name, pos - r.range.start))
            .unwrap_or_else(|| format!("byte {pos} (outside every field)"))
    }
}

/// Suites with an ECDSA footer.
pub(crate) fn is_signed(suite: u16) -> bool {
    matches!(suite, 0x0214 | 0x0346 | 0x0378 | 0x0578)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    regions: Vec<Region>,
}

impl<'a> Reader<'a> {
    fn take(&mut self, name: impl Into<String>, n: usize) -> Result<&'a [u8], String> {
        let name = name.into();
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| format!("truncated in {name} at byte {}", self.pos))?;
        let bytes = &self.buf[self.pos..end];
        if n > 0 {
            self.regions.push(Region {
                name,
                range: self.pos..end,
            });
        }
        self.pos = end;
        Ok(bytes)
    }

    fn u8(&mut self, name: &str) -> Result<u8, String> {
        Ok(self.take(name, 1)?[0])
    }

    fn u16(&mut self, name: &str) -> Result<u16, String> {
        let b = self.take(name, 2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, name: &str) -> Result<u32, String> {
        let b = self.take(name, 4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, name: &str) -> Result<u64, String> {
        let b = self.take(name, 8)?;
        Ok(u64::from_be_bytes(b.try_into().expect("8 bytes")))
    }

    fn peek(&self, n: usize) -> Option<&'a [u8]> {
        self.buf.get(self.pos..self.pos + n)
    }
}

/// Reads the layout of a whole message; trailing bytes are an error.
pub(crate) fn parse(msg: &[u8]) -> Result<Layout, String> {
    let mut r = Reader {
        buf: msg,
        pos: 0,
        regions: Vec::new(),
    };
    let version = r.u8("header.version")?;
    if version == 1 {
        r.u8("header.type")?;
    } else if version != 2 {
        return Err(format!("unknown message format version {version}"));
    }
    let suite = r.u16("header.suite_id")?;
    let message_id = r
        .take("header.message_id", if version == 1 { 16 } else { 32 })?
        .to_vec();
    let aad_len = r.u16("header.aad_length")? as usize;
    let mut context = Vec::new();
    if aad_len > 0 {
        let start = r.pos;
        let pairs = r.u16("context.count")?;
        for i in 0..pairs {
            let kl = r.u16(&format!("context[{i}].key_length"))? as usize;
            let k = r.take(format!("context[{i}].key"), kl)?;
            let vl = r.u16(&format!("context[{i}].value_length"))? as usize;
            let v = r.take(format!("context[{i}].value"), vl)?;
            context.push((
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ));
        }
        if r.pos - start != aad_len {
            return Err("AAD length does not match the context".into());
        }
    }
    let edk_count = r.u16("header.edk_count")?;
    let mut edks = Vec::new();
    for i in 0..edk_count {
        let n = r.u16(&format!("edk[{i}].provider_id_length"))? as usize;
        let provider_id = r.take(format!("edk[{i}].provider_id"), n)?.to_vec();
        let n = r.u16(&format!("edk[{i}].provider_info_length"))? as usize;
        let provider_info = r.take(format!("edk[{i}].provider_info"), n)?.to_vec();
        let n = r.u16(&format!("edk[{i}].ciphertext_length"))? as usize;
        r.take(format!("edk[{i}].ciphertext"), n)?;
        edks.push(Edk {
            provider_id,
            provider_info,
        });
    }
    let content_type = r.u8("header.content_type")?;
    let frame_length;
    if version == 1 {
        r.take("header.reserved", 4)?;
        r.u8("header.iv_length")?;
        frame_length = r.u32("header.frame_length")?;
        r.take("header.iv", 12)?;
    } else {
        frame_length = r.u32("header.frame_length")?;
        r.take("header.commit_key", 32)?;
    }
    r.take("header.auth_tag", 16)?;

    let mut frames = Vec::new();
    match content_type {
        2 => loop {
            if r.peek(4) == Some(&[0xff; 4]) {
                let i = frames.len() + 1;
                r.take(format!("final_frame({i}).marker"), 4)?;
                let sequence = r.u32(&format!("final_frame({i}).sequence"))?;
                r.take(format!("final_frame({i}).iv"), 12)?;
                let len = r.u32(&format!("final_frame({i}).content_length"))?;
                r.take(format!("final_frame({i}).ciphertext"), len as usize)?;
                r.take(format!("final_frame({i}).tag"), 16)?;
                frames.push(Frame {
                    sequence,
                    is_final: true,
                    content_len: len.into(),
                });
                break;
            }
            let i = frames.len() + 1;
            let sequence = r.u32(&format!("frame({i}).sequence"))?;
            r.take(format!("frame({i}).iv"), 12)?;
            r.take(format!("frame({i}).ciphertext"), frame_length as usize)?;
            r.take(format!("frame({i}).tag"), 16)?;
            frames.push(Frame {
                sequence,
                is_final: false,
                content_len: frame_length.into(),
            });
        },
        1 => {
            r.take("body.iv", 12)?;
            let len = r.u64("body.content_length")?;
            let len_usize = usize::try_from(len).map_err(|_| "content length too large")?;
            r.take("body.ciphertext", len_usize)?;
            r.take("body.tag", 16)?;
            frames.push(Frame {
                sequence: 1,
                is_final: true,
                content_len: len,
            });
        }
        other => return Err(format!("unknown content type {other}")),
    }
    if is_signed(suite) {
        let n = r.u16("footer.signature_length")? as usize;
        r.take("footer.signature", n)?;
    }
    if r.pos != msg.len() {
        return Err(format!(
            "{} trailing bytes after the message",
            msg.len() - r.pos
        ));
    }
    Ok(Layout {
        version,
        suite,
        message_id,
        context,
        edks,
        content_type,
        frame_length,
        frames,
        regions: r.regions,
    })
}

/// Positions worth tampering with: every byte of short fields; the first three, the last
/// three and every 16th byte of long ones.
pub(crate) fn sample_positions(layout: &Layout) -> Vec<usize> {
    let mut out = Vec::new();
    for r in &layout.regions {
        let len = r.range.len();
        for (i, p) in r.range.clone().enumerate() {
            if len <= 8 || i < 3 || i + 3 >= len || i % 16 == 0 {
                out.push(p);
            }
        }
    }
    out
}

/// Lengths worth cutting a message to: 0, each field boundary and one byte either side of
/// it, and the sampled interior positions; always shorter than the message.
pub(crate) fn sample_cuts(layout: &Layout, total: usize) -> Vec<usize> {
    let mut out = vec![0];
    for r in &layout.regions {
        for p in [
            r.range.start,
            r.range.start + 1,
            r.range.end.saturating_sub(1),
        ] {
            out.push(p);
        }
        out.push(r.range.end);
    }
    out.extend(sample_positions(layout));
    out.retain(|&n| n < total);
    out.sort_unstable();
    out.dedup();
    out
}
