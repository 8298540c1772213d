//! One page of a ListObjects answer, built from keys offered in ascending order: the
//! `after` point (marker, start-after or continuation token), common prefixes under a
//! delimiter, and the `max_keys` cut. It holds at most one page, so a listing of a bucket of
//! any size reads the backend only as far as the page reaches.

/// What the reader of the backend listing should do after offering a key.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Offer the next key.
    Next,
    /// The key fell inside this common prefix, which the page already holds (or which the
    /// `after` point passed): every key under it is skipped the same way, so a reader may
    /// restart its listing after the prefix.
    Skip(String),
    /// The page is full (and truncated): stop.
    Full,
}

/// What a listing asks for: keys under `prefix`, after `after`, folded by `delimiter`, at
/// most `max` entries.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Query<'a> {
    pub(crate) prefix: &'a str,
    delimiter: Option<&'a str>,
    pub(crate) after: Option<&'a str>,
    max: usize,
}

impl<'a> Query<'a> {
    /// An empty delimiter is no delimiter.
    pub(crate) fn new(
        prefix: &'a str,
        delimiter: Option<&'a str>,
        after: Option<&'a str>,
        max: usize,
    ) -> Self {
        Self {
            prefix,
            delimiter: delimiter.filter(|d| !d.is_empty()),
            after,
            max,
        }
    }

    /// For a key (starting with the prefix) that the `after` point passed: `Next` when it
    /// sorts at or before it, `Skip` when it lies under the common prefix the point is.
    fn passed(&self, key: &str) -> Option<Step> {
        let a = self.after?;
        if key <= a {
            return Some(Step::Next);
        }
        // A token that is a common prefix: its keys were that prefix's one entry.
        (self.delimiter.is_some_and(|d| a.ends_with(d)) && key.starts_with(a))
            .then(|| Step::Skip(a.to_owned()))
    }

    /// The common prefix a key (starting with the prefix) falls in, under the delimiter.
    fn common(&self, key: &str) -> Option<String> {
        let d = self.delimiter?;
        let rest = &key[self.prefix.len()..];
        rest.find(d)
            .map(|i| format!("{}{}", self.prefix, &rest[..i + d.len()]))
    }
}

/// A page being filled.
pub(crate) struct Pager<'a, T> {
    pub(crate) q: Query<'a>,
    pub(crate) picked: Vec<(String, T)>,
    pub(crate) prefixes: Vec<String>,
    pub(crate) truncated: bool,
    last: Option<String>,
}

impl<'a, T> Pager<'a, T> {
    pub(crate) fn new(q: Query<'a>) -> Self {
        Self {
            q,
            picked: Vec::new(),
            prefixes: Vec::new(),
            truncated: false,
            last: None,
        }
    }

    /// Offer the next key (greater than every key offered before) that starts with the
    /// prefix.
    pub(crate) fn offer(&mut self, key: String, item: T) -> Step {
        // An empty page asked for is empty and not truncated (as S3 answers max-keys=0).
        if self.q.max == 0 {
            return Step::Full;
        }
        if let Some(step) = self.q.passed(&key) {
            return step;
        }
        let common = self.q.common(&key);
        if let Some(cp) = &common {
            if self.prefixes.last() == Some(cp) {
                return Step::Skip(cp.clone());
            }
        }
        if self.picked.len() + self.prefixes.len() >= self.q.max {
            self.truncated = true;
            return Step::Full;
        }
        match common {
            Some(cp) => {
                self.last = Some(cp.clone());
                self.prefixes.push(cp);
            }
            None => {
                self.last = Some(key.clone());
                self.picked.push((key, item));
            }
        }
        Step::Next
    }

    /// The continuation point of a truncated page: its last key or common prefix.
    pub(crate) fn next_token(&self) -> Option<String> {
        self.truncated.then(|| self.last.clone()).flatten()
    }
}

/// The first string after every key that starts with `prefix` except the (rare) ones
/// continuing with U+10FFFF: where a listing may restart to skip the keys under a common
/// prefix. Keys it does not skip are skipped by the pager all the same.
pub(crate) fn past(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Offer `keys` (sorted here) to a pager; the keys picked, the prefixes, the token.
    fn page(
        keys: &[&str],
        prefix: &str,
        delimiter: Option<&str>,
        after: Option<&str>,
        max: usize,
    ) -> (Vec<String>, Vec<String>, Option<String>) {
        let mut keys: Vec<&str> = keys.to_vec();
        keys.sort_unstable();
        let mut p = Pager::new(Query::new(prefix, delimiter, after, max));
        for k in keys {
            if !k.starts_with(prefix) {
                continue;
            }
            if p.offer(k.to_owned(), ()) == Step::Full {
                break;
            }
        }
        let next = p.next_token();
        (
            p.picked.into_iter().map(|(k, ())| k).collect(),
            p.prefixes,
            next,
        )
    }

    const TREE: &[&str] = &["a", "b/1", "b/2", "b/c/3", "c", "d/4", "e"];

    #[test]
    fn without_a_delimiter_every_key_is_listed_in_pages() {
        let (keys, prefixes, next) = page(TREE, "", None, None, 3);
        assert_eq!(keys, ["a", "b/1", "b/2"]);
        assert!(prefixes.is_empty());
        assert_eq!(next.as_deref(), Some("b/2"));
        let (keys, _, next) = page(TREE, "", None, Some("b/2"), 3);
        assert_eq!(keys, ["b/c/3", "c", "d/4"]);
        assert_eq!(next.as_deref(), Some("d/4"));
        let (keys, _, next) = page(TREE, "", None, Some("d/4"), 3);
        assert_eq!(keys, ["e"]);
        assert_eq!(next, None);
    }

    #[test]
    fn a_delimiter_folds_keys_into_common_prefixes_and_the_token_passes_them() {
        let (keys, prefixes, next) = page(TREE, "", Some("/"), None, 2);
        assert_eq!(keys, ["a"]);
        assert_eq!(prefixes, ["b/"]);
        assert_eq!(next.as_deref(), Some("b/"));
        let (keys, prefixes, next) = page(TREE, "", Some("/"), Some("b/"), 2);
        assert_eq!(keys, ["c"]);
        assert_eq!(prefixes, ["d/"]);
        assert_eq!(next.as_deref(), Some("d/"));
        let (keys, prefixes, next) = page(TREE, "", Some("/"), Some("d/"), 2);
        assert_eq!(keys, ["e"]);
        assert!(prefixes.is_empty());
        assert_eq!(next, None);
    }

    #[test]
    fn a_prefix_lists_one_level_below_it() {
        let (keys, prefixes, next) = page(TREE, "b/", Some("/"), None, 10);
        assert_eq!(keys, ["b/1", "b/2"]);
        assert_eq!(prefixes, ["b/c/"]);
        assert_eq!(next, None);
    }

    #[test]
    fn keys_inside_a_listed_prefix_ask_to_be_skipped() {
        let mut p: Pager<'_, ()> = Pager::new(Query::new("", Some("/"), None, 10));
        assert_eq!(p.offer("b/1".into(), ()), Step::Next);
        assert_eq!(p.offer("b/2".into(), ()), Step::Skip("b/".into()));
        let mut p: Pager<'_, ()> = Pager::new(Query::new("", Some("/"), Some("b/"), 10));
        assert_eq!(p.offer("b/2".into(), ()), Step::Skip("b/".into()));
        assert_eq!(p.offer("c".into(), ()), Step::Next);
    }

    #[test]
    fn an_empty_page_asked_for_is_empty_and_not_truncated() {
        let mut p: Pager<'_, ()> = Pager::new(Query::new("", Some("/"), None, 0));
        assert_eq!(p.offer("a".into(), ()), Step::Full);
        assert!(p.picked.is_empty() && p.prefixes.is_empty() && !p.truncated);
        assert_eq!(p.next_token(), None);
    }

    #[test]
    fn past_sorts_after_the_keys_under_a_prefix_and_before_the_next_ones() {
        let p = past("b/");
        assert!("b/zzz" < p.as_str() && "b/\u{FFFF}x" < p.as_str());
        assert!(p.as_str() < "b0" && p.as_str() < "c");
    }
}
