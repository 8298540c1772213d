//! The policy engine: Cedar policy files named by `[policy] files`, checked against the
//! schema (built in, or `[policy] schema`) when a session opens, and the decisions over them.
//!
//! A file that does not parse or validate stops the start with `FILE:LINE:COLUMN: what`.
//! Policy ids are the `@id("…")` annotation, else `FILE#N` (N-th policy of the file, from
//! 1); ids must be unique over all files. A decision allows when some `permit` applies and
//! no `forbid` does; `default = "allow"` adds a `permit` for everything (id
//! `default-allow`), so only `forbid`s refuse. A `forbid` whose evaluation fails (a missing
//! tag read without `hasTag`) refuses: the engine fails closed.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Effect, Entities, PolicyId, PolicySet, Schema, ValidationMode, Validator,
};
use miette::Diagnostic;
use serde::Deserialize;

use super::index::Index;
use super::request::{principal_uid, Query};
use super::residency::Residency;
use super::schema::BUILTIN;
use crate::{Error, Result};

/// Largest policy or schema file read.
pub const MAX_POLICY_FILE_BYTES: u64 = 1024 * 1024;
/// Most policy files.
pub const MAX_POLICY_FILES: usize = 256;

/// Id of the built-in `permit` of `default = "allow"`.
pub const DEFAULT_ALLOW_ID: &str = "default-allow";
/// Id named when nothing permits and `default = "deny"`.
pub const DEFAULT_DENY_ID: &str = "default-deny";

/// What is decided when no policy permits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DefaultDecision {
    /// Nothing is allowed unless a `permit` applies (Cedar's own rule).
    #[default]
    Deny,
    /// Everything is allowed unless a `forbid` applies.
    Allow,
}

/// `[policy]` in `hyok.toml`. Relative paths are taken relative to the configuration file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Cedar policy files.
    #[serde(default)]
    pub files: Vec<PathBuf>,
    /// A Cedar schema file (`.cedarschema`) replacing the built-in schema.
    pub schema: Option<PathBuf>,
    /// `deny` (default) or `allow` when no policy permits.
    pub default: Option<DefaultDecision>,
}

/// One decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request is allowed.
    pub allowed: bool,
    /// The policies that decided: the `permit`s that applied (allowed), or the `forbid`s
    /// that applied or failed, or [`DEFAULT_DENY_ID`] (denied).
    pub policies: Vec<String>,
    /// Policies whose evaluation failed, with the error.
    pub errors: Vec<String>,
}

/// Loaded, validated policies.
#[derive(Debug)]
pub struct Engine {
    policies: PolicySet,
    /// The subsets of `policies` that can apply to one request (see `index.rs`).
    index: Index,
    residency: Option<PolicySet>,
    /// The schema's action entities, when it has action groups (`action in Group`);
    /// without groups a decision needs none.
    actions: Option<Entities>,
    authorizer: Authorizer,
    default: DefaultDecision,
    files: Vec<PathBuf>,
    count: usize,
}

/// `FILE:LINE:COLUMN: message` on one line, from a Cedar diagnostic over `text`.
fn located(file: &str, text: &str, d: &dyn Diagnostic, message: &str) -> String {
    let offset = d
        .labels()
        .and_then(|mut l| l.next())
        .map(|l| l.offset())
        .or_else(|| {
            d.related()
                .and_then(|mut r| r.next())
                .and_then(|r| r.labels())
                .and_then(|mut l| l.next())
                .map(|l| l.offset())
        });
    let mut out = String::new();
    match offset {
        Some(o) => {
            let (line, col) = line_col(text, o);
            let _ = write!(out, "{file}:{line}:{col}: ");
        }
        None => {
            let _ = write!(out, "{file}: ");
        }
    }
    out.push_str(&one_line(message));
    if let Some(h) = d.help() {
        let _ = write!(out, " ({})", one_line(&h.to_string()));
    }
    out
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// 1-based line and column (in characters) of byte `offset` of `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn read_bounded(path: &Path) -> Result<String> {
    use std::io::Read;
    let cannot = |e: std::io::Error| Error::Config(format!("cannot read {}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(cannot)?;
    if !file.metadata().map_err(cannot)?.is_file() {
        return Err(Error::Config(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_POLICY_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_POLICY_FILE_BYTES {
        return Err(Error::Config(format!(
            "{} is larger than {MAX_POLICY_FILE_BYTES} bytes",
            path.display()
        )));
    }
    String::from_utf8(bytes)
        .map_err(|_| Error::Config(format!("{} is not UTF-8 text", path.display())))
}

/// Parse one schema text.
pub fn parse_schema(name: &str, text: &str) -> Result<Schema> {
    Schema::from_cedarschema_str(text)
        .map(|(s, _warnings)| s)
        .map_err(|e| Error::Config(located(name, text, &e, &e.to_string())))
}

/// Parse one policy file's text into policies with their final ids, validated against
/// `schema`.
fn parse_policies(name: &str, text: &str, validator: &Validator) -> Result<PolicySet> {
    let parsed = PolicySet::from_str(text)
        .map_err(|e| Error::Config(located(name, text, &e, &e.to_string())))?;
    if parsed.templates().next().is_some() {
        return Err(Error::Config(format!(
            "{name}: policy templates (?principal, ?resource) are not supported; write the entities out"
        )));
    }
    // Cedar names a text's policies policy0, policy1 … in order.
    let mut in_order: Vec<_> = parsed
        .policies()
        .map(|p| {
            let n: usize = p
                .id()
                .to_string()
                .strip_prefix("policy")
                .and_then(|n| n.parse().ok())
                .unwrap_or(usize::MAX);
            (n, p)
        })
        .collect();
    in_order.sort_by_key(|(n, _)| *n);
    let mut set = PolicySet::new();
    for (i, (_, p)) in in_order.into_iter().enumerate() {
        let id = match p.annotation("id") {
            Some(id) if !id.is_empty() => id.to_owned(),
            _ => format!("{name}#{}", i + 1),
        };
        set.add(p.new_id(PolicyId::new(&id)))
            .map_err(|e| Error::Config(format!("{name}: {e}")))?;
    }
    let result = validator.validate(&set, ValidationMode::Strict);
    if let Some(e) = result.validation_errors().next() {
        return Err(Error::Config(located(name, text, e, &e.to_string())));
    }
    Ok(set)
}

fn merge(into: &mut PolicySet, from: PolicySet, name: &str) -> Result<()> {
    for p in from.policies() {
        if into.policy(p.id()).is_some() {
            return Err(Error::Config(format!(
                "{name}: policy id {:?} is used twice (ids come from @id(\"…\") and must be unique over all [policy] files)",
                p.id().to_string()
            )));
        }
        into.add(p.clone())
            .map_err(|e| Error::Config(format!("{name}: {e}")))?;
    }
    Ok(())
}

const RESIDENCY_NAME: &str = "[[residency.allow]]";

impl Engine {
    /// The engine of a configuration: `[policy]` (paths relative to `base`) plus the
    /// translated residency rules. `None` when neither says anything.
    pub fn open(
        config: Option<&PolicyConfig>,
        residency: &Residency,
        base: Option<&Path>,
    ) -> Result<Option<Self>> {
        let translated = residency.to_cedar();
        if config.is_none() && translated.is_none() {
            return Ok(None);
        }
        let resolve = |p: &Path| match base {
            Some(b) if p.is_relative() => b.join(p),
            _ => p.to_path_buf(),
        };
        let mut files = Vec::new();
        if let Some(c) = config {
            if c.files.len() > MAX_POLICY_FILES {
                return Err(Error::Config(format!(
                    "[policy] files lists more than {MAX_POLICY_FILES} files"
                )));
            }
            for f in &c.files {
                let path = resolve(f);
                let text = read_bounded(&path)?;
                files.push((path, text));
            }
        }
        let schema = match config.and_then(|c| c.schema.as_deref()) {
            Some(p) => {
                let path = resolve(p);
                let text = read_bounded(&path)?;
                Some((path.display().to_string(), text))
            }
            None => None,
        };
        let default = match config {
            Some(c) => c.default.unwrap_or_default(),
            None => DefaultDecision::Allow,
        };
        let sources: Vec<(String, &str)> = files
            .iter()
            .map(|(p, t)| (p.display().to_string(), t.as_str()))
            .collect();
        let mut engine = Self::from_texts(
            &sources,
            schema.as_ref().map(|(n, t)| (n.as_str(), t.as_str())),
            default,
            translated.as_deref(),
        )?;
        engine.files = files.into_iter().map(|(p, _)| p).collect();
        Ok(Some(engine))
    }

    /// An engine over policy texts `(name, text)`, a schema text (built in when `None`),
    /// and the residency translation.
    pub fn from_texts(
        sources: &[(String, &str)],
        schema: Option<(&str, &str)>,
        default: DefaultDecision,
        residency: Option<&str>,
    ) -> Result<Self> {
        let schema = match schema {
            Some((name, text)) => parse_schema(name, text)?,
            None => parse_schema("built-in schema", BUILTIN)?,
        };
        let actions = match schema.action_groups().next() {
            Some(_) => Some(
                schema
                    .action_entities()
                    .map_err(|e| Error::Config(format!("policy schema: {e}")))?,
            ),
            None => None,
        };
        let validator = Validator::new(schema);
        let mut policies = PolicySet::new();
        let mut count = 0;
        let residency = match residency {
            Some(text) => {
                let set = parse_policies(RESIDENCY_NAME, text, &validator)?;
                merge(&mut policies, set.clone(), RESIDENCY_NAME)?;
                let mut alone = set;
                merge(&mut alone, default_allow()?, RESIDENCY_NAME)?;
                Some(alone)
            }
            None => None,
        };
        for (name, text) in sources {
            let set = parse_policies(name, text, &validator)?;
            count += set.num_of_policies();
            merge(&mut policies, set, name)?;
        }
        if default == DefaultDecision::Allow {
            merge(&mut policies, default_allow()?, "default")?;
        }
        let index = Index::new(&policies, actions.as_ref())?;
        Ok(Self {
            policies,
            index,
            residency,
            actions,
            authorizer: Authorizer::new(),
            default,
            files: Vec::new(),
            count,
        })
    }

    /// The policy files read.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Policies from the files (not counting residency and the default).
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the files hold no policy.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The default decision.
    pub fn default_decision(&self) -> DefaultDecision {
        self.default
    }

    /// The ids of every policy, sorted.
    pub fn policy_ids(&self) -> Vec<String> {
        let mut ids: Vec<_> = self
            .policies
            .policies()
            .map(|p| p.id().to_string())
            .collect();
        ids.sort();
        ids
    }

    /// The Cedar text of a policy.
    pub fn policy_text(&self, id: &str) -> Option<String> {
        self.policies
            .policy(&PolicyId::new(id))
            .map(|p| p.to_string())
    }

    /// Decide a request. Only the policies whose scope (action, principal) and required
    /// encryption-context pair can apply to the request are evaluated (see `index.rs`);
    /// the decision, its policies and errors are those of [`Self::decide_whole`].
    pub fn decide(&self, q: &Query) -> Result<Decision> {
        let Some(subset) = self.index.subset(q.action, &principal_uid(&q.principal)) else {
            return self.decide_whole(q);
        };
        // XKS requests carry no encryption context (see `Query::to_cedar`).
        let pairs = q.facts.xks.is_none().then_some(&q.facts.encryption_context);
        let sets = subset.sets(pairs);
        let (request, entities) = self.cedar(q)?;
        Ok(self.evaluate(&request, &entities, &sets, &self.policies))
    }

    /// Decide a request over every policy, one by one (the reference [`Self::decide`] is
    /// tested against).
    pub fn decide_whole(&self, q: &Query) -> Result<Decision> {
        self.decide_over(&self.policies, q)
    }

    /// Decide a request over the residency rules alone (`Session::permit`); `None` when
    /// there are none.
    pub fn decide_residency(&self, q: &Query) -> Result<Option<Decision>> {
        match &self.residency {
            Some(set) => self.decide_over(set, q).map(Some),
            None => Ok(None),
        }
    }

    fn decide_over(&self, set: &PolicySet, q: &Query) -> Result<Decision> {
        let (request, entities) = self.cedar(q)?;
        Ok(self.evaluate(&request, &entities, &[set], set))
    }

    /// The Cedar request and entities of `q`.
    fn cedar(&self, q: &Query) -> Result<(cedar_policy::Request, Entities)> {
        let (request, entities) = q.to_cedar()?;
        let entities = match &self.actions {
            Some(a) => a.clone().add_entities(entities, None),
            None => Entities::from_entities(entities, None),
        }
        .map_err(|e| Error::Config(format!("policy request: {e}")))?;
        Ok((request, entities))
    }

    /// The decision over the union of `sets` (disjoint subsets of `whole`, each in
    /// `whole`'s order): allowed when some `permit` applies and no `forbid` applies or
    /// fails, as Cedar decides over one set.
    fn evaluate(
        &self,
        request: &cedar_policy::Request,
        entities: &Entities,
        sets: &[&PolicySet],
        whole: &PolicySet,
    ) -> Decision {
        let mut reasons = BTreeSet::new();
        let mut failures: Vec<(PolicyId, String)> = Vec::new();
        for set in sets {
            if set.is_empty() {
                continue;
            }
            let response = self.authorizer.is_authorized(request, set, entities);
            let diagnostics = response.diagnostics();
            reasons.extend(diagnostics.reason().map(|p| p.to_string()));
            for e in diagnostics.errors() {
                let cedar_policy::AuthorizationError::PolicyEvaluationError(pe) = e;
                failures.push((pe.policy_id().clone(), one_line(&pe.inner().to_string())));
            }
        }
        if sets.len() > 1 && failures.len() > 1 {
            // One set reports failures in its order; several, in the whole set's.
            let position: HashMap<&PolicyId, usize> = whole
                .policies()
                .enumerate()
                .map(|(i, p)| (p.id(), i))
                .collect();
            failures.sort_by_key(|(id, _)| position.get(id).copied().unwrap_or(usize::MAX));
        }
        let is =
            |id: &PolicyId, effect: Effect| whole.policy(id).is_some_and(|p| p.effect() == effect);
        let errors = failures
            .iter()
            .map(|(id, e)| format!("{id}: {e}"))
            .collect();
        let failed_forbids: Vec<String> = failures
            .iter()
            .filter(|(id, _)| is(id, Effect::Forbid))
            .map(|(id, _)| id.to_string())
            .collect();
        // Over one set Cedar names the applying `forbid`s when one applies, else the
        // applying `permit`s; several sets may each report one kind, so split them here.
        let (forbids, permits): (Vec<String>, Vec<String>) = reasons
            .into_iter()
            .partition(|id| is(&PolicyId::new(id), Effect::Forbid));
        let (allowed, policies) = if !failed_forbids.is_empty() || !forbids.is_empty() {
            let mut ids = forbids;
            ids.extend(failed_forbids);
            (false, ids)
        } else if !permits.is_empty() {
            (true, permits)
        } else {
            (false, vec![DEFAULT_DENY_ID.to_owned()])
        };
        Decision {
            allowed,
            policies,
            errors,
        }
    }
}

fn default_allow() -> Result<PolicySet> {
    let p = cedar_policy::Policy::parse(
        Some(PolicyId::new(DEFAULT_ALLOW_ID)),
        "permit(principal, action, resource);",
    )
    .map_err(|e| Error::Config(format!("default policy: {e}")))?;
    let mut set = PolicySet::new();
    set.add(p)
        .map_err(|e| Error::Config(format!("default policy: {e}")))?;
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_lines_and_columns() {
        let t = "ab\ncdé\nx";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 3), (2, 1));
        assert_eq!(line_col(t, 6), (2, 3)); // inside `é`: its start
        assert_eq!(line_col(t, 7), (2, 4));
        assert_eq!(line_col(t, 8), (3, 1));
        assert_eq!(line_col(t, 99), (3, 2));
    }

    #[test]
    fn a_syntax_error_names_file_line_and_column() {
        let text = "permit(principal, action, resource);\n\nforbid(principal, action = Hyok::Action::\"put\", resource);\n";
        let e = Engine::from_texts(
            &[("team.cedar".into(), text)],
            None,
            DefaultDecision::Deny,
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("configuration: team.cedar:3:"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn a_schema_error_names_file_line_and_column() {
        let text = "permit(principal, action == Hyok::Action::\"put\", resource)\nwhen { resource.colour == \"red\" };\n";
        let e = Engine::from_texts(
            &[("p.cedar".into(), text)],
            None,
            DefaultDecision::Deny,
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("configuration: p.cedar:2:"), "{e}");
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn ids_come_from_annotations_or_file_and_position_and_must_be_unique() {
        let text = "@id(\"a\") permit(principal, action, resource);\npermit(principal, action, resource);\n";
        let e = Engine::from_texts(
            &[("x.cedar".into(), text)],
            None,
            DefaultDecision::Deny,
            None,
        )
        .unwrap();
        assert_eq!(e.policy_ids(), vec!["a", "x.cedar#2"]);
        let dup = Engine::from_texts(
            &[("x.cedar".into(), text), ("y.cedar".into(), text)],
            None,
            DefaultDecision::Deny,
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(dup.contains("\"a\" is used twice"), "{dup}");
    }
}
