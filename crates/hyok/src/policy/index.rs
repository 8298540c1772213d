//! The policy index: at load, the policy set split into the subsets that can apply to one
//! request, so a decision evaluates only those instead of every policy.
//!
//! Cedar evaluates a policy as `principal-scope && action-scope && resource-scope &&
//! condition1 && condition2 …`, left to right, stopping at the first `false`. A policy whose
//! scope is false for a request neither applies nor fails, so leaving it out of the
//! evaluation changes neither the decision, nor the deciding policies, nor the errors. The
//! index leaves out only such policies:
//!
//! - **action**: `action == A` and `action in [A, G…]` (with the schema's action groups) are
//!   resolved against each of hyok's actions at load; `action` alone goes everywhere.
//! - **principal**: hyok's principal entities have no parents (`request.rs` builds them
//!   with none), so `principal == P`, `principal in P` and `principal is T in P` apply to
//!   `P` alone, and `principal is T` to principals of type `T`. Each (action, principal
//!   named by some policy) gets its subset; every other principal gets its type's subset
//!   (policies with an unconstrained or `is T` principal).
//! - **required tag**: a policy whose first `when` condition starts with
//!   `context.encryption_context.hasTag("T") && …` is false, without error, for a request
//!   whose encryption context has no pair `T` (hyok sends the pairs as the tags of that
//!   entity). Such policies are kept apart per tag and evaluated only when the request
//!   carries the tag. XKS requests have no encryption context; they get every group.
//!
//! A policy is copied (with its text) into each subset it belongs to. Above [`MAX_ENTRIES`]
//! copies, named policies join their type's subset instead of getting one per principal;
//! above that again (some thousands of policies) there is no index and every decision
//! evaluates the whole set. Decisions are the same at every level.
//!
//! The whole set stays in the engine for `policy_ids`, `policy_text` and
//! [`super::Engine::decide_whole`], the reference the index is tested against.

use std::collections::{BTreeMap, HashMap};

use cedar_policy::{
    ActionConstraint, Entities, EntityTypeName, EntityUid, Policy, PolicySet, PrincipalConstraint,
};

use super::request::{action_uid, principal_types, Action};
use crate::{Error, Result};

/// Most policy copies in all subsets together.
pub(crate) const MAX_ENTRIES: usize = 100_000;

/// The policies one request may need.
#[derive(Debug, Default)]
pub(crate) struct Subset {
    /// Policies that need no particular encryption-context pair.
    unguarded: PolicySet,
    /// Policies that apply only when the encryption context has the pair named.
    guarded: BTreeMap<String, PolicySet>,
}

impl Subset {
    fn add(&mut self, p: &Policy, tag: Option<&str>) -> Result<()> {
        let set = match tag {
            Some(t) => self.guarded.entry(t.to_owned()).or_default(),
            None => &mut self.unguarded,
        };
        set.add(p.clone())
            .map_err(|e| Error::Config(format!("policy index: {e}")))
    }

    /// The sets to evaluate for a request with the encryption-context pairs `pairs`
    /// (`None`: a request without an encryption context, which gets every set).
    pub(crate) fn sets(&self, pairs: Option<&BTreeMap<String, String>>) -> Vec<&PolicySet> {
        let mut out = Vec::with_capacity(2);
        out.push(&self.unguarded);
        for (tag, set) in &self.guarded {
            if pairs.is_none_or(|p| p.contains_key(tag)) {
                out.push(set);
            }
        }
        out
    }
}

#[derive(Debug, Default)]
struct ForAction {
    by_uid: HashMap<EntityUid, Subset>,
    by_type: HashMap<EntityTypeName, Subset>,
    /// Principals of a type no policy of this action names.
    other: Subset,
}

/// The subsets, per action of [`Action::ALL`]; `None` above [`MAX_ENTRIES`].
#[derive(Debug)]
pub(crate) struct Index {
    actions: Option<Vec<ForAction>>,
}

/// Who a policy's principal scope admits.
enum Who {
    Anyone,
    OfType(EntityTypeName),
    Only(EntityUid),
}

fn who(p: &Policy) -> Who {
    match p.principal_constraint() {
        PrincipalConstraint::Any => Who::Anyone,
        PrincipalConstraint::Is(t) => Who::OfType(t),
        PrincipalConstraint::Eq(u) | PrincipalConstraint::In(u) => Who::Only(u),
        PrincipalConstraint::IsIn(t, u) => {
            if u.type_name() == &t {
                Who::Only(u)
            } else {
                // `principal is T in U` with U not a T: only a T with parent U, and hyok's
                // principals have none. Keep it where it can be tested: type T.
                Who::OfType(t)
            }
        }
    }
}

fn applies_to_action(p: &Policy, a: &EntityUid, groups: Option<&Entities>) -> bool {
    match p.action_constraint() {
        ActionConstraint::Any => true,
        ActionConstraint::Eq(u) => &u == a,
        ActionConstraint::In(list) => list
            .iter()
            .any(|g| g == a || groups.is_some_and(|e| e.is_ancestor_of(g, a))),
    }
}

/// `T` when the first `when` condition of `p` starts with
/// `context.encryption_context.hasTag("T")`.
pub(crate) fn required_tag(p: &Policy) -> Option<String> {
    let json = p.to_json().ok()?;
    let first = json.get("conditions")?.as_array()?.first()?;
    if first.get("kind")?.as_str()? != "when" {
        return None;
    }
    let mut e = first.get("body")?;
    while let Some(and) = e.get("&&") {
        e = and.get("left")?;
    }
    let has = e.get("hasTag")?;
    let receiver = has.get("left")?.get(".")?;
    if receiver.get("left")?.get("Var")?.as_str()? != "context"
        || receiver.get("attr")?.as_str()? != "encryption_context"
    {
        return None;
    }
    has.get("right")?.get("Value")?.as_str().map(str::to_owned)
}

impl Index {
    /// The index of `set`; `groups` are the schema's action entities when it has groups.
    pub(crate) fn new(set: &PolicySet, groups: Option<&Entities>) -> Result<Self> {
        let policies: Vec<(&Policy, Who, Option<String>)> = set
            .policies()
            .map(|p| (p, who(p), required_tag(p)))
            .collect();
        let types = principal_types();
        let named: Vec<&EntityUid> = policies
            .iter()
            .filter_map(|(_, w, _)| match w {
                Who::Only(u) => Some(u),
                _ => None,
            })
            .collect();
        let principals = named.iter().collect::<std::collections::HashSet<_>>().len();
        let general = policies.len() - named.len();
        // Upper bounds of the copies: every policy in each type's subset of each action,
        // and each named principal's subset repeating the general policies.
        let actions = Action::ALL.len();
        let by_type = actions
            .saturating_mul(types.len())
            .saturating_mul(policies.len());
        let by_uid = actions.saturating_mul(
            principals
                .saturating_mul(general)
                .saturating_add(named.len()),
        );
        if by_type > MAX_ENTRIES {
            return Ok(Self { actions: None });
        }
        let split_named = by_type.saturating_add(by_uid) <= MAX_ENTRIES;
        let mut index = Vec::with_capacity(actions);
        for action in Action::ALL {
            let a = action_uid(action);
            let mut f = ForAction::default();
            for t in &types {
                f.by_type.insert(t.clone(), Subset::default());
            }
            let here: Vec<_> = policies
                .iter()
                .filter(|(p, _, _)| applies_to_action(p, &a, groups))
                .collect();
            // Named principals first get an empty subset, so that every policy added to a
            // type below also lands in them, in the set's order.
            if split_named {
                for (_, w, _) in &here {
                    if let Who::Only(u) = w {
                        f.by_uid.entry(u.clone()).or_default();
                    }
                }
            }
            for (p, w, tag) in &here {
                let tag = tag.as_deref();
                match w {
                    Who::Anyone => {
                        f.other.add(p, tag)?;
                        for s in f.by_type.values_mut() {
                            s.add(p, tag)?;
                        }
                        for s in f.by_uid.values_mut() {
                            s.add(p, tag)?;
                        }
                    }
                    Who::OfType(t) => {
                        if let Some(s) = f.by_type.get_mut(t) {
                            s.add(p, tag)?;
                        }
                        for (u, s) in f.by_uid.iter_mut() {
                            if u.type_name() == t {
                                s.add(p, tag)?;
                            }
                        }
                    }
                    Who::Only(u) => {
                        if split_named {
                            if let Some(s) = f.by_uid.get_mut(u) {
                                s.add(p, tag)?;
                            }
                        } else if let Some(s) = f.by_type.get_mut(u.type_name()) {
                            s.add(p, tag)?;
                        }
                    }
                }
            }
            index.push(f);
        }
        Ok(Self {
            actions: Some(index),
        })
    }

    /// The subset for `action` by `principal`; `None` without an index (evaluate the
    /// whole set).
    pub(crate) fn subset(&self, action: Action, principal: &EntityUid) -> Option<&Subset> {
        let i = Action::ALL
            .iter()
            .position(|a| *a == action)
            .unwrap_or_else(|| unreachable!("Action::ALL holds every action"));
        let f = &self.actions.as_ref()?[i];
        Some(
            f.by_uid
                .get(principal)
                .or_else(|| f.by_type.get(principal.type_name()))
                .unwrap_or(&f.other),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> Policy {
        Policy::parse(None, text).unwrap()
    }

    #[test]
    fn a_leading_has_tag_of_the_encryption_context_is_a_required_pair() {
        let ec = "context.encryption_context";
        for (when, tag) in [
            (format!("when {{ {ec}.hasTag(\"class\") }}"), Some("class")),
            (
                format!("when {{ {ec}.hasTag(\"class\") && {ec}.getTag(\"class\") == \"x\" && context.hour > 3 }}"),
                Some("class"),
            ),
            (
                format!("when {{ {ec}.hasTag(\"a\") }} when {{ context.hour > 3 }}"),
                Some("a"),
            ),
            // Not first, negated, or-ed, or in `unless`: the rule may apply without the pair.
            (format!("when {{ context.hour > 3 && {ec}.hasTag(\"a\") }}"), None),
            (format!("when {{ !{ec}.hasTag(\"a\") }}"), None),
            (format!("when {{ {ec}.hasTag(\"a\") || context.hour > 3 }}"), None),
            (format!("unless {{ {ec}.hasTag(\"a\") }}"), None),
            (format!("when {{ context.hour > 3 }} when {{ {ec}.hasTag(\"a\") }}"), None),
            (String::new(), None),
        ] {
            let p = policy(&format!("forbid(principal, action, resource) {when};"));
            assert_eq!(required_tag(&p).as_deref(), tag, "{when}");
        }
    }
}
