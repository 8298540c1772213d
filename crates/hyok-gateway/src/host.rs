//! Virtual-hosted-style addressing (`[gateway] virtual_host_domains`): which bucket, if any,
//! a request's `Host` names. `B.DOMAIN` addresses bucket B when DOMAIN is configured; every
//! other host (an IP address, a configured domain itself, a name not configured) is read
//! path-style, as without the setting. Nothing is guessed from the shape of a name: a host
//! taken for a bucket that is not one would send a request to the wrong bucket and key.

use std::borrow::Cow;

use hyok::{Error, Result};
use s3s::host::{S3Host, VirtualHost};
use s3s::S3Result;

/// Longest domain name (RFC 1035).
const MAX_DOMAIN: usize = 253;

/// The configured base domains, lower case, none inside another.
#[derive(Debug)]
pub(crate) struct Domains(Vec<String>);

impl Domains {
    /// From names checked by [`check_domains`].
    pub(crate) fn new(domains: Vec<String>) -> Self {
        Self(domains)
    }

    /// The bucket `host` names, if it is `BUCKET.DOMAIN` for a configured DOMAIN.
    fn bucket_of(&self, host: &str) -> Option<String> {
        let name = name_of(host)?;
        self.0.iter().find_map(|d| {
            let bucket = name.strip_suffix(d.as_str())?.strip_suffix('.')?;
            Some(bucket.to_owned())
        })
    }
}

/// The host name of a `Host` header value, lower case, without port and final dot; `None`
/// for an IPv6 literal.
fn name_of(host: &str) -> Option<String> {
    if host.starts_with('[') {
        return None;
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    Some(name.to_ascii_lowercase())
}

impl S3Host for Domains {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        Ok(match self.bucket_of(host) {
            // s3s checks the bucket name (InvalidBucketName otherwise).
            Some(bucket) => VirtualHost::new(Cow::Borrowed(host)).with_bucket(bucket),
            None => VirtualHost::new(Cow::Borrowed(host)),
        })
    }
}

/// Check `[gateway] virtual_host_domains`: DNS names (letters, digits, `-`, labels of 1-63
/// characters), not IP addresses, no port, none equal to or inside another (a host under
/// both would name two different buckets). Returned in lower case.
pub(crate) fn check_domains(domains: &[String]) -> Result<Vec<String>> {
    let bad = |d: &str, why: &str| {
        Error::Config(format!(
            "[gateway] virtual_host_domains: {:?} {why}",
            hyok::text::escape_str(d)
        ))
    };
    let mut out: Vec<String> = Vec::new();
    for d in domains {
        let lower = d.to_ascii_lowercase();
        let name = lower.strip_suffix('.').unwrap_or(&lower);
        let labels_ok = name.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
        if name.is_empty() || name.len() > MAX_DOMAIN || !labels_ok {
            return Err(bad(
                d,
                "is not a domain name (letters, digits and `-` in dot-separated labels, no port)",
            ));
        }
        if name.parse::<std::net::Ipv4Addr>().is_ok()
            || name
                .split('.')
                .all(|l| l.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(bad(
                d,
                "is an IP address: requests to an address are always path-style",
            ));
        }
        if let Some(other) = out
            .iter()
            .find(|o| *o == name || inside(name, o) || inside(o, name))
        {
            return Err(bad(
                d,
                &format!("overlaps {other:?}: a host under both would name two buckets"),
            ));
        }
        out.push(name.to_owned());
    }
    Ok(out)
}

/// Whether `name` is a subdomain of `domain`.
fn inside(name: &str, domain: &str) -> bool {
    name.strip_suffix(domain)
        .is_some_and(|rest| rest.ends_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domains(v: &[&str]) -> Domains {
        Domains::new(check_domains(&v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap())
    }

    #[test]
    fn a_bucket_only_under_a_configured_domain() {
        let d = domains(&["S3.Example.Internal", "gw.test"]);
        assert_eq!(
            d.bucket_of("photos.s3.example.internal").as_deref(),
            Some("photos")
        );
        assert_eq!(
            d.bucket_of("Photos.S3.EXAMPLE.internal:7070").as_deref(),
            Some("photos")
        );
        assert_eq!(
            d.bucket_of("my.dotted.bucket.gw.test.").as_deref(),
            Some("my.dotted.bucket")
        );
        // The domain itself, other names, addresses: path-style.
        for host in [
            "s3.example.internal",
            "s3.example.internal:7070",
            "gw.test",
            "xgw.test",
            "photos.s3.example.internal.evil",
            "gateway.corp.example",
            "127.0.0.1:7070",
            "[::1]:7070",
            "localhost:7070",
        ] {
            assert_eq!(d.bucket_of(host), None, "{host}");
        }
        // An empty label before the domain is handed to s3s, which refuses the bucket name.
        assert_eq!(d.bucket_of(".gw.test").as_deref(), Some(""));
    }

    #[test]
    fn domains_are_checked() {
        let check =
            |v: &[&str]| check_domains(&v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        assert_eq!(check(&["GW.Test."]).unwrap(), ["gw.test"]);
        assert_eq!(check(&["localhost"]).unwrap(), ["localhost"]);
        for bad in [
            &[""][..],
            &["gw.test:7070"],
            &["gw..test"],
            &["-gw.test"],
            &["gw_test"],
            &["127.0.0.1"],
            &["gw.test", "a.gw.test"],
            &["a.gw.test", "gw.test"],
            &["gw.test", "GW.test"],
        ] {
            let err = check(bad).unwrap_err().to_string();
            assert!(err.contains("virtual_host_domains"), "{bad:?}: {err}");
        }
        assert!(check(&["gw.test", "xgw.test"]).is_ok());
    }
}
