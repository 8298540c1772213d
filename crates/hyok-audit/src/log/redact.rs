//! Secrets out of key URIs before they are recorded.

/// Remove secret-looking query attributes and URI passwords from a key URI before it is
/// recorded. Key stores already give URIs without secrets; this is a second fence.
pub fn redact_uri(uri: &str) -> String {
    const SECRET: [&str; 7] = [
        "pin-value",
        "pin",
        "password",
        "passwd",
        "secret",
        "token",
        "passphrase",
    ];
    let (base, query) = match uri.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (uri, None),
    };
    // scheme://user:password@host → scheme://user:***@host
    let base = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (auth, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            match auth.rsplit_once('@') {
                Some((userinfo, host)) if userinfo.contains(':') => {
                    let user = userinfo.split(':').next().unwrap_or_default();
                    format!("{scheme}://{user}:***@{host}{path}")
                }
                _ => base.to_owned(),
            }
        }
        None => base.to_owned(),
    };
    let Some(query) = query else {
        return base;
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| {
            let name = pair.split('=').next().unwrap_or_default();
            let lower = name.to_ascii_lowercase();
            if SECRET
                .iter()
                .any(|s| lower == *s || lower.ends_with(&format!("-{s}")))
                || lower.contains("password")
                || lower.contains("secret")
                || lower.contains("token")
            {
                format!("{name}=***")
            } else {
                pair.to_owned()
            }
        })
        .collect();
    format!("{base}?{}", pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_secrets_in_uris() {
        assert_eq!(
            redact_uri("pkcs11:token=t;object=k?pin-value=1234&module-path=/x.so"),
            "pkcs11:token=t;object=k?pin-value=***&module-path=/x.so"
        );
        assert_eq!(
            redact_uri("kmip://alice:hunter2@kms.example:5696/key"),
            "kmip://alice:***@kms.example:5696/key"
        );
        assert_eq!(
            redact_uri("vault-transit://v:8200/transit/k?token=s.abc&x-vault-token=s.def"),
            "vault-transit://v:8200/transit/k?token=***&x-vault-token=***"
        );
        assert_eq!(
            redact_uri("raw-aes:ns/k?file=/keys/a.key"),
            "raw-aes:ns/k?file=/keys/a.key"
        );
    }
}
