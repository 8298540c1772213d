//! Secrets out of key URIs before they are recorded.
//!
//! Key stores hand the log canonical URIs without secrets; this is the second fence, for
//! every string that reaches a record as a key (including what a user typed and a key
//! store refused). It works on the parsed form, so spelling cannot get a secret past it:
//! the string is split into scheme, userinfo, path attributes (`;name=value`, as in
//! `pkcs11:`) and query attributes, names are percent-decoded and normalised before they
//! are compared, values that are URLs themselves are redacted the same way, and the
//! record holds the URI put back together from those parts (fragments dropped). A string
//! that does not parse as `scheme:…` is recorded only if it is a plain path.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

/// What replaces a secret.
const HIDDEN: &str = "***";
/// What replaces a key string that cannot be parsed.
const WITHHELD: &str = "(key withheld: not a parsable key URI)";

/// Characters escaped when a part is put back: the separators of the parts around it.
const PART: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'%')
    .add(b'&')
    .add(b';')
    .add(b'?')
    .add(b'#')
    .add(b'=')
    .add(b'"');

/// The canonical, redacted form of a key URI (or key file path) for the audit log.
pub fn redact_uri(uri: &str) -> String {
    redact_depth(uri, 0)
}

fn redact_depth(uri: &str, depth: u8) -> String {
    let Some((scheme, rest)) = split_scheme(uri) else {
        // No scheme: a key file path is recorded as it is; anything with URI syntax in
        // it (attributes, userinfo) is not.
        return if uri.contains(['?', ';', '=', '@', '#', '%']) {
            WITHHELD.into()
        } else {
            uri.into()
        };
    };
    if depth > 2 {
        return WITHHELD.into();
    }
    // Fragments carry nothing a key needs.
    let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
    let (hier, query) = match rest.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (rest, None),
    };
    let mut out = format!("{}:", scheme.to_ascii_lowercase());
    let path = match hier.strip_prefix("//") {
        Some(after) => {
            let (authority, path) = after.split_at(after.find('/').unwrap_or(after.len()));
            out.push_str("//");
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => {
                    match userinfo.split_once(':') {
                        Some((user, _password)) => {
                            out.push_str(&reencode(&decode(user)));
                            out.push(':');
                            out.push_str(HIDDEN);
                        }
                        // A user name alone may be a token (`https://TOKEN@host`).
                        None => out.push_str(HIDDEN),
                    }
                    out.push('@');
                    out.push_str(host);
                }
                None => out.push_str(authority),
            }
            path
        }
        None => hier,
    };
    // Path attributes: `pkcs11:token=t;object=k;pin-value=1234`.
    for (i, segment) in path.split(';').enumerate() {
        if i > 0 {
            out.push(';');
        }
        out.push_str(&part(segment, true, depth).unwrap_or_else(|| segment.to_owned()));
    }
    if let Some(q) = query {
        out.push('?');
        let pairs: Vec<String> = q
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| part(pair, false, depth).unwrap_or_else(|| reencode(&decode(pair))))
            .collect();
        out.push_str(&pairs.join("&"));
    }
    out
}

/// A `name=value` attribute, redacted; `None` if `segment` is not one (also after
/// percent-decoding: `pin-value%3D1234` is an attribute too).
fn part(segment: &str, in_path: bool, depth: u8) -> Option<String> {
    let (name, value) = match segment.split_once('=') {
        Some((n, v)) => (decode(n), decode(v)),
        None => {
            let d = decode(segment);
            let (n, v) = d.split_once('=')?;
            (n.to_owned(), v.to_owned())
        }
    };
    Some(attribute(&name, &value, in_path, depth))
}

/// `name=value` (both decoded) with the value hidden if the name is secret, or redacted
/// itself if it is a URL. In the path, `token` is a PKCS#11 token label (RFC 7512).
fn attribute(name: &str, value: &str, in_path: bool, depth: u8) -> String {
    let label = in_path && name.eq_ignore_ascii_case("token");
    let shown = if is_secret(name) && !label {
        HIDDEN.to_owned()
    } else if split_scheme(value).is_some() && value.contains("//") {
        reencode(&redact_depth(value, depth + 1))
    } else if value.contains('@') && value.contains(':') {
        // `user:password@host` without a scheme.
        HIDDEN.to_owned()
    } else {
        reencode(value)
    };
    format!("{}={shown}", reencode(name))
}

/// Is this attribute name (decoded) one that holds a secret?
fn is_secret(name: &str) -> bool {
    let n = name.trim().to_ascii_lowercase().replace('_', "-");
    const EXACT: [&str; 12] = [
        "pin",
        "pin-value",
        "passwd",
        "pass",
        "pwd",
        "key-value",
        "sig",
        "signature",
        "x-amz-signature",
        "credential",
        "credentials",
        "authorization",
    ];
    EXACT.contains(&n.as_str())
        || n.ends_with("-pin")
        || [
            "password",
            "secret",
            "token",
            "passphrase",
            "api-key",
            "apikey",
        ]
        .iter()
        .any(|s| n.contains(s))
}

/// `scheme` and what follows its `:`, if `s` starts with a URI scheme.
fn split_scheme(s: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = s.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some((scheme, rest))
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

fn reencode(s: &str) -> String {
    utf8_percent_encode(s, PART).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every way a secret can ride in a key URI, and what the log holds instead.
    #[test]
    fn secrets_in_every_form_are_redacted() {
        let cases = [
            // Query attributes.
            (
                "pkcs11:token=t;object=k?pin-value=1234&module-path=/x.so",
                "pkcs11:token=t;object=k?pin-value=***&module-path=/x.so",
            ),
            (
                "vault-transit://v:8200/transit/k?token=s.abc&x-vault-token=s.def",
                "vault-transit://v:8200/transit/k?token=***&x-vault-token=***",
            ),
            ("kmip:k?password=hunter2", "kmip:k?password=***"),
            ("kmip:k?Client_Secret=hunter2", "kmip:k?Client_Secret=***"),
            ("raw-aes:ns/k?pin=1234", "raw-aes:ns/k?pin=***"),
            ("raw-aes:ns/k?so-pin=1234", "raw-aes:ns/k?so-pin=***"),
            // Path attributes.
            (
                "pkcs11:token=t;object=k;pin-value=1234",
                "pkcs11:token=t;object=k;pin-value=***",
            ),
            (
                "pkcs11:token=t;pin-value=1234;object=k",
                "pkcs11:token=t;pin-value=***;object=k",
            ),
            // Percent-encoded names and values.
            (
                "pkcs11:token=t;object=k?pin%2Dvalue=1234",
                "pkcs11:token=t;object=k?pin-value=***",
            ),
            (
                "pkcs11:token=t;object=k;%70in-value=1234",
                "pkcs11:token=t;object=k;pin-value=***",
            ),
            ("vault-transit:k?%74oken=s.abc", "vault-transit:k?token=***"),
            // Userinfo, also inside a query value.
            (
                "kmip://alice:hunter2@kms.example:5696/key",
                "kmip://alice:***@kms.example:5696/key",
            ),
            (
                "kmip://s.tokenonly@kms.example/key",
                "kmip://***@kms.example/key",
            ),
            (
                "vault-transit:k?addr=https://u:p4ss@h:8200",
                "vault-transit:k?addr=https://u:***@h:8200",
            ),
            (
                "vault-transit:k?addr=https%3A%2F%2Fu%3Ap4ss%40h%3A8200",
                "vault-transit:k?addr=https://u:***@h:8200",
            ),
            ("vault-transit:k?addr=u:p4ss@h", "vault-transit:k?addr=***"),
            // An encoded `=` makes an attribute too.
            (
                "pkcs11:token=t;object=k;pin-value%3D1234",
                "pkcs11:token=t;object=k;pin-value=***",
            ),
            ("kmip:k?password%3Dhunter2", "kmip:k?password=***"),
            // Fragments are dropped.
            ("raw-aes:ns/k#p4ss", "raw-aes:ns/k"),
            // Nothing secret: unchanged.
            (
                "raw-aes:ns/k?file=/keys/a.key",
                "raw-aes:ns/k?file=/keys/a.key",
            ),
            (
                "pkcs11:token=t;object=k?pin-source=file:/run/pin",
                "pkcs11:token=t;object=k?pin-source=file:/run/pin",
            ),
            ("/etc/hyok/k.pem", "/etc/hyok/k.pem"),
            // Not a URI but URI-like: withheld.
            ("pin-value=1234", WITHHELD),
            ("1234;pin=1234", WITHHELD),
        ];
        for (input, want) in cases {
            let got = redact_uri(input);
            assert_eq!(got, want, "{input}");
            for secret in ["1234", "hunter2", "s.abc", "s.def", "p4ss", "s.tokenonly"] {
                if input.contains(secret) {
                    assert!(!got.contains(secret), "{input} -> {got}");
                }
            }
        }
    }
}
