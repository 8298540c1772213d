//! The residency guard: where encrypted data may be stored.
//!
//! `[[residency.allow]]` rules in `hyok.toml` list the S3 locations data may go to; a rule
//! matches when every field it sets matches (endpoint, region, bucket, key prefix). With at
//! least one rule, a destination that matches none is refused before any request is sent,
//! and the refusal names each rule and why it did not match. Local folders are allowed
//! unless `allow_local = false`.

use serde::Deserialize;

use crate::{Error, Result};

/// `[residency]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Residency {
    /// Whether local folders are allowed destinations (default true).
    #[serde(default)]
    pub allow_local: Option<bool>,
    /// Allowed S3 locations; empty means no restriction.
    #[serde(default)]
    pub allow: Vec<AllowRule>,
}

/// One allowed S3 location. Unset fields match anything.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowRule {
    /// Name shown in refusals (default `#N`, counting from 1).
    pub name: Option<String>,
    /// Exact endpoint URL (compared without a trailing `/`).
    pub endpoint: Option<String>,
    /// Exact region.
    pub region: Option<String>,
    /// Exact bucket.
    pub bucket: Option<String>,
    /// Key prefix the object key must start with.
    pub prefix: Option<String>,
}

/// Where a write would go, as resolved before any request.
#[derive(Clone, Debug)]
pub struct Destination<'a> {
    /// The object or prefix URL (for messages).
    pub url: &'a str,
    /// Whether it is a local folder.
    pub local: bool,
    /// Endpoint requests would go to.
    pub endpoint: Option<&'a str>,
    /// Region.
    pub region: Option<&'a str>,
    /// Bucket.
    pub bucket: &'a str,
    /// Object key.
    pub key: &'a str,
}

impl AllowRule {
    fn label(&self, i: usize) -> String {
        match &self.name {
            Some(n) => format!("{n:?}"),
            None => format!("#{}", i + 1),
        }
    }

    /// Why the rule does not match, or `None` when it matches.
    fn mismatch(&self, d: &Destination<'_>) -> Option<String> {
        let trim = |s: &str| s.trim_end_matches('/').to_owned();
        if let Some(e) = &self.endpoint {
            if d.endpoint.map(trim) != Some(trim(e)) {
                return Some(format!(
                    "endpoint must be {e} (is {})",
                    d.endpoint.unwrap_or("unknown")
                ));
            }
        }
        if let Some(r) = &self.region {
            if d.region != Some(r.as_str()) {
                return Some(format!(
                    "region must be {r} (is {})",
                    d.region.unwrap_or("unknown")
                ));
            }
        }
        if let Some(b) = &self.bucket {
            if d.bucket != b {
                return Some(format!("bucket must be {b} (is {})", d.bucket));
            }
        }
        if let Some(p) = &self.prefix {
            if !d.key.starts_with(p.as_str()) {
                return Some(format!("key must start with {p:?}"));
            }
        }
        None
    }
}

impl Residency {
    pub(crate) fn check(&self) -> Result<()> {
        for (i, r) in self.allow.iter().enumerate() {
            if r.endpoint.is_none()
                && r.region.is_none()
                && r.bucket.is_none()
                && r.prefix.is_none()
            {
                return Err(Error::Config(format!(
                    "residency rule {} sets none of endpoint, region, bucket, prefix (it would allow everything)",
                    r.label(i)
                )));
            }
        }
        Ok(())
    }

    /// Whether data may be written to `d`; the error names every rule and its mismatch.
    pub fn permits(&self, d: &Destination<'_>) -> Result<()> {
        if d.local {
            return if self.allow_local.unwrap_or(true) {
                Ok(())
            } else {
                Err(Error::Residency(format!(
                    "{} is a local folder and [residency] allow_local = false",
                    d.url
                )))
            };
        }
        if self.allow.is_empty() {
            return Ok(());
        }
        let mut why = Vec::new();
        for (i, r) in self.allow.iter().enumerate() {
            match r.mismatch(d) {
                None => return Ok(()),
                Some(m) => why.push(format!("rule {}: {m}", r.label(i))),
            }
        }
        Err(Error::Residency(format!(
            "{} is outside the residency allowlist ({})",
            d.url,
            why.join("; ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest<'a>(region: &'a str, bucket: &'a str, key: &'a str) -> Destination<'a> {
        Destination {
            url: "s3://x/y",
            local: false,
            endpoint: Some("https://s3.eu-central-1.amazonaws.com/"),
            region: Some(region),
            bucket,
            key,
        }
    }

    #[test]
    fn rules_allow_and_refuse_with_names() {
        let r = Residency {
            allow_local: None,
            allow: vec![AllowRule {
                name: Some("eu-only".into()),
                region: Some("eu-central-1".into()),
                bucket: Some("eu-data".into()),
                prefix: Some("backups/".into()),
                endpoint: Some("https://s3.eu-central-1.amazonaws.com".into()),
            }],
        };
        r.check().unwrap();
        r.permits(&dest("eu-central-1", "eu-data", "backups/a"))
            .unwrap();
        let e = r
            .permits(&dest("us-east-1", "eu-data", "backups/a"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"eu-only\"") && e.contains("region must be eu-central-1"),
            "{e}"
        );
        let e = r
            .permits(&dest("eu-central-1", "eu-data", "other/a"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("key must start with"), "{e}");
        let local = Destination {
            local: true,
            ..dest("", "", "")
        };
        r.permits(&local).unwrap();
        let strict = Residency {
            allow_local: Some(false),
            ..r.clone()
        };
        assert!(strict.permits(&local).is_err());
        let empty_rule = Residency {
            allow_local: None,
            allow: vec![AllowRule::default()],
        };
        assert!(empty_rule.check().is_err());
        Residency::default()
            .permits(&dest("any", "b", "k"))
            .unwrap();
    }
}
