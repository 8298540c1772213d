//! What a credential may reach: `bucket` or `bucket/prefix` patterns, where `*` matches any
//! run of characters (`/` included). `*` alone is everything; `logs-*` every bucket whose
//! name starts with `logs-`; `shared/team-a/*` the keys under `team-a/` of bucket `shared`.

use hyok::{Error, Result};

/// One pattern of `buckets = [...]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    bucket: String,
    /// `None`: every key of the matching buckets.
    key: Option<String>,
}

/// `*` matches any run of characters; everything else itself.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// Whether some key matching `pattern` (a glob) can start with `prefix`.
fn may_start_with(pattern: &str, prefix: &str) -> bool {
    let literal = pattern.split('*').next().unwrap_or("");
    if literal.len() == pattern.len() {
        // No `*`: the key is exactly `pattern`.
        return pattern.starts_with(prefix);
    }
    literal.starts_with(prefix) || prefix.starts_with(literal)
}

impl Pattern {
    /// Parse `*`, `BUCKET`, `BUCKET/KEYPATTERN` (globs).
    pub fn parse(s: &str) -> Result<Self> {
        if s.is_empty() || s.len() > 1024 || s.chars().any(char::is_control) {
            return Err(Error::Config(format!(
                "[[gateway.credentials]] buckets: {:?} is not a bucket or bucket/prefix pattern",
                hyok::text::escape_str(s)
            )));
        }
        Ok(match s.split_once('/') {
            Some((b, k)) if !b.is_empty() && !b.contains('*') || b == "*" => Self {
                bucket: b.to_owned(),
                key: Some(k.to_owned()).filter(|k| k != "*"),
            },
            Some(_) => {
                return Err(Error::Config(format!(
                    "[[gateway.credentials]] buckets: {s:?}: use a bucket name or `*` before `/`"
                )))
            }
            None => Self {
                bucket: s.to_owned(),
                key: None,
            },
        })
    }

    /// The bucket name, when the pattern names one bucket (no `*`).
    pub fn literal_bucket(&self) -> Option<&str> {
        (!self.bucket.contains('*')).then_some(self.bucket.as_str())
    }

    /// Whether it covers the whole bucket (create, delete, list everything).
    pub fn whole_bucket(&self, bucket: &str) -> bool {
        self.key.is_none() && glob(&self.bucket, bucket)
    }

    /// Whether it reaches any key of `bucket`.
    pub fn touches_bucket(&self, bucket: &str) -> bool {
        glob(&self.bucket, bucket)
    }

    /// Whether it covers the object `bucket`/`key`.
    pub fn object(&self, bucket: &str, key: &str) -> bool {
        glob(&self.bucket, bucket) && self.key.as_deref().is_none_or(|k| glob(k, key))
    }

    /// Whether some object under `prefix` of `bucket` may be covered (listings).
    pub fn may_list(&self, bucket: &str, prefix: &str) -> bool {
        glob(&self.bucket, bucket)
            && self
                .key
                .as_deref()
                .is_none_or(|k| may_start_with(k, prefix))
    }
}

/// A credential's patterns.
pub trait Patterns {
    /// Whether any pattern covers the object.
    fn object(&self, bucket: &str, key: &str) -> bool;
    /// Whether any pattern covers the whole bucket.
    fn whole_bucket(&self, bucket: &str) -> bool;
    /// Whether any pattern reaches into the bucket.
    fn touches_bucket(&self, bucket: &str) -> bool;
    /// Whether a listing of `prefix` may show anything.
    fn may_list(&self, bucket: &str, prefix: &str) -> bool;
}

impl Patterns for [Pattern] {
    fn object(&self, bucket: &str, key: &str) -> bool {
        self.iter().any(|p| p.object(bucket, key))
    }
    fn whole_bucket(&self, bucket: &str) -> bool {
        self.iter().any(|p| p.whole_bucket(bucket))
    }
    fn touches_bucket(&self, bucket: &str) -> bool {
        self.iter().any(|p| p.touches_bucket(bucket))
    }
    fn may_list(&self, bucket: &str, prefix: &str) -> bool {
        self.iter().any(|p| p.may_list(bucket, prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pats(v: &[&str]) -> Vec<Pattern> {
        v.iter().map(|p| Pattern::parse(p).unwrap()).collect()
    }

    #[test]
    fn globs() {
        assert!(glob("*", ""));
        assert!(glob("a*c", "abbc"));
        assert!(!glob("a*c", "abbd"));
        assert!(glob("a*b*c", "a-b-c"));
        assert!(!glob("ab*ba", "aba"));
        assert!(glob("x", "x"));
        assert!(!glob("x", "xy"));
    }

    #[test]
    fn patterns_reach_what_they_say() {
        let all = pats(&["*"]);
        assert!(all.object("any", "k") && all.whole_bucket("any"));

        let p = pats(&["logs-*", "shared/team-a/*"]);
        assert!(p.object("logs-2026", "x/y"));
        assert!(p.whole_bucket("logs-2026"));
        assert!(p.object("shared", "team-a/report.pdf"));
        assert!(!p.object("shared", "team-b/report.pdf"));
        assert!(!p.whole_bucket("shared"));
        assert!(p.touches_bucket("shared"));
        assert!(!p.touches_bucket("private"));
        assert!(p.may_list("shared", ""));
        assert!(p.may_list("shared", "team-a/x"));
        assert!(!p.may_list("shared", "team-b/"));

        assert!(Pattern::parse("").is_err());
        assert!(Pattern::parse("a*/b").is_err());
    }
}
