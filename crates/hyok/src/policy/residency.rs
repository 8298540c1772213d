//! The residency guard: where encrypted data may be stored.
//!
//! `[[residency.allow]]` rules in `hyok.toml` list the S3 locations data may go to; a rule
//! matches when every field it sets matches (endpoint, region, bucket, key prefix). With at
//! least one rule, a destination that matches none is refused before any request is sent,
//! and the refusal names each rule and why it did not match. Local folders are allowed
//! unless `allow_local = false`.
//!
//! The rules are a shorthand for one Cedar `forbid` policy with id `residency` over the
//! `put` action ([`Residency::to_cedar`]); the policy engine decides, and
//! [`Residency::permits`] explains a refusal rule by rule.

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

/// A Cedar string literal of `s`; with `like`, `*` is escaped too (a literal star).
fn literal(s: &str, like: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '*' if like => out.push_str("\\*"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    if like {
        out.push('*');
    }
    out.push('"');
    out
}

/// Id of the policy the residency rules become.
pub const RESIDENCY_POLICY_ID: &str = "residency";

impl Residency {
    /// Whether there is anything to enforce.
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.allow_local.unwrap_or(true)
    }

    /// The rules as one Cedar policy: forbid `put` of an object unless the object is local
    /// (and local folders are allowed) or some rule matches. `None` without rules.
    pub fn to_cedar(&self) -> Option<String> {
        if self.is_empty() {
            return None;
        }
        let mut alternatives = Vec::new();
        if self.allow_local.unwrap_or(true) {
            alternatives.push("resource.store == \"file\"".to_owned());
        }
        if self.allow.is_empty() {
            alternatives.push("resource.store == \"s3\"".to_owned());
        }
        for r in &self.allow {
            let mut all = vec!["resource.store == \"s3\"".to_owned()];
            if let Some(e) = &r.endpoint {
                all.push(format!(
                    "context.endpoint == {}",
                    literal(e.trim_end_matches('/'), false)
                ));
            }
            if let Some(v) = &r.region {
                all.push(format!("context.region == {}", literal(v, false)));
            }
            if let Some(b) = &r.bucket {
                all.push(format!("resource.bucket == {}", literal(b, false)));
            }
            if let Some(p) = &r.prefix {
                all.push(format!("resource.key like {}", literal(p, true)));
            }
            alternatives.push(format!("({})", all.join(" && ")));
        }
        let names: Vec<String> = self
            .allow
            .iter()
            .enumerate()
            .map(|(i, r)| r.label(i))
            .collect();
        Some(format!(
            "// Translated from [[residency.allow]] {}.\n@id({})\nforbid(principal, action == Hyok::Action::\"put\", resource is Hyok::Object)\nunless {{\n  {}\n}};\n",
            names.join(", ").replace('\n', " "),
            literal(RESIDENCY_POLICY_ID, false),
            alternatives.join("\n  || ")
        ))
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

    /// The translated policy decides exactly as the rules do, for every kind of mismatch.
    #[test]
    fn the_cedar_translation_agrees_with_the_rules() {
        use crate::policy::{Action, DefaultDecision, Engine, Facts, Principal, Query, Resource};
        let rules = Residency {
            allow_local: Some(false),
            allow: vec![
                AllowRule {
                    name: Some("eu \"quoted\" *star*".into()),
                    region: Some("eu-central-1".into()),
                    bucket: Some("eu-data".into()),
                    prefix: Some("back*ups/".into()),
                    endpoint: Some("https://s3.eu-central-1.amazonaws.com/".into()),
                },
                AllowRule {
                    bucket: Some("archive".into()),
                    ..AllowRule::default()
                },
            ],
        };
        let text = rules.to_cedar().unwrap();
        let engine = Engine::from_texts(&[], None, DefaultDecision::Deny, Some(&text)).unwrap();
        let cases: [(bool, &str, &str, &str, &str); 9] = [
            (
                false,
                "https://s3.eu-central-1.amazonaws.com",
                "eu-central-1",
                "eu-data",
                "back*ups/a",
            ),
            (
                false,
                "https://s3.eu-central-1.amazonaws.com/",
                "eu-central-1",
                "eu-data",
                "back*ups/",
            ),
            (
                false,
                "https://s3.eu-central-1.amazonaws.com",
                "eu-central-1",
                "eu-data",
                "backXups/a",
            ),
            (
                false,
                "https://s3.eu-central-1.amazonaws.com",
                "us-east-1",
                "eu-data",
                "back*ups/a",
            ),
            (
                false,
                "https://other",
                "eu-central-1",
                "eu-data",
                "back*ups/a",
            ),
            (false, "", "", "archive", "anything"),
            (false, "", "", "other", "anything"),
            (true, "", "", "(local)", "/tmp/x"),
            (
                false,
                "https://s3.eu-central-1.amazonaws.com",
                "eu-central-1",
                "eu-data2",
                "back*ups/a",
            ),
        ];
        for (local, endpoint, region, bucket, key) in cases {
            let d = Destination {
                url: "u",
                local,
                endpoint: Some(endpoint).filter(|e| !e.is_empty()),
                region: Some(region).filter(|r| !r.is_empty()),
                bucket,
                key,
            };
            let q = Query {
                principal: Principal::Identity("me".into()),
                action: Action::Put,
                resource: Resource::Object {
                    url: "u".into(),
                    store: if local { "file" } else { "s3" }.into(),
                    bucket: bucket.into(),
                    key: key.into(),
                },
                facts: Facts {
                    region: region.into(),
                    endpoint: endpoint.trim_end_matches('/').into(),
                    ..Facts::default()
                },
            };
            let cedar = engine.decide_residency(&q).unwrap().unwrap();
            assert_eq!(
                cedar.allowed,
                rules.permits(&d).is_ok(),
                "{endpoint} {region} {bucket} {key}: {cedar:?}"
            );
            if !cedar.allowed {
                assert_eq!(cedar.policies, vec![RESIDENCY_POLICY_ID]);
            }
        }
        // Other actions are not residency's business.
        let q = Query {
            principal: Principal::Identity("me".into()),
            action: Action::Get,
            resource: Resource::Object {
                url: "u".into(),
                store: "s3".into(),
                bucket: "other".into(),
                key: "k".into(),
            },
            facts: Facts::default(),
        };
        assert!(engine.decide_residency(&q).unwrap().unwrap().allowed);
        assert!(Residency::default().to_cedar().is_none());
    }
}
