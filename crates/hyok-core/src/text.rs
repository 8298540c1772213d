//! Untrusted text (context keys and values, EDK provider infos, object names) made safe to
//! show on a terminal: control characters, bidirectional and invisible format characters
//! and invalid UTF-8 become visible escapes, so a value cannot forge lines, move the
//! cursor, set a terminal title or reorder what is shown. JSON output does not use this: it
//! has its own exact escaping.

use std::fmt::Write as _;

/// Characters that change how the text around them is displayed without being visible:
/// bidirectional controls, zero-width and line/paragraph separators, the BOM.
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2069}'
        | '\u{FEFF}')
}

fn push_char(out: &mut String, c: char, escape_backslash: bool) {
    match c {
        '\\' if escape_backslash => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if ('\u{80}'..='\u{9f}').contains(&c) || is_invisible_format(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// Escape bytes read from a message or a store for a terminal. Backslashes are doubled, so
/// the result reads back unambiguously; invalid UTF-8 bytes become `\xNN`.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_char(&mut out, c, true);
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// Escape a string read from a message or a store for a terminal (see [`escape_bytes`]).
pub fn escape_str(s: &str) -> String {
    escape_bytes(s.as_bytes())
}

/// Escape only what a terminal would act on (controls, bidirectional and invisible
/// characters), leaving backslashes alone: for whole messages whose untrusted parts were
/// already escaped, so nothing is escaped twice.
pub fn escape_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        push_char(&mut out, c, false);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forging_characters_become_visible() {
        let raw = b"a\x1b]0;title\x07b\rc\nd\xe2\x80\xaee\xff\\f";
        assert_eq!(
            escape_bytes(raw),
            "a\\x1b]0;title\\x07b\\rc\\nd\\u{202e}e\\xff\\\\f"
        );
        assert_eq!(escape_str("plain text, ümlaut"), "plain text, ümlaut");
        assert_eq!(escape_controls("a\\x1b\u{1b}"), "a\\x1b\\x1b");
        assert_eq!(escape_str("\u{85}\u{7f}\t"), "\\u{85}\\x7f\\t");
    }
}
