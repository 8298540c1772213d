//! The policy index decides exactly as Cedar over the whole set: `Engine::decide` (the
//! subsets that can apply) against `Engine::decide_whole` (every policy), over a varied
//! request set: every action, principals named and not named by policies, objects, keyrings
//! and keys, encryption contexts with and without the pairs rules look for, XKS requests,
//! failing rules, forbid-overrides-permit and default deny.

use std::time::{Duration, UNIX_EPOCH};

use hyok::policy::{
    Action, Decision, DefaultDecision, Engine, Facts, Principal, Query, Resource, XksFacts,
};

const POLICIES: &str = r#"
@id("alice-all")
permit(principal == Hyok::Identity::"alice", action, resource);

@id("bob-reads-data")
permit(principal in Hyok::Identity::"bob", action in [Hyok::Action::"get", Hyok::Action::"list"], resource in Hyok::Bucket::"data");

@id("carol-writes")
permit(principal is Hyok::Identity in Hyok::Identity::"carol", action == Hyok::Action::"put", resource is Hyok::Object);

@id("credentials-list")
permit(principal is Hyok::Credential, action == Hyok::Action::"list", resource);

@id("ak1-objects")
permit(principal == Hyok::Credential::"AK1", action in [Hyok::Action::"put", Hyok::Action::"get", Hyok::Action::"delete"], resource)
when { context.via == "gateway" };

@id("no-credential-deletes")
forbid(principal is Hyok::Credential, action == Hyok::Action::"delete", resource)
when { resource is Hyok::Object && resource.key like "keep/*" };

@id("no-secret")
forbid(principal, action in [Hyok::Action::"encrypt", Hyok::Action::"decrypt"], resource)
when { context.encryption_context.hasTag("class") && context.encryption_context.getTag("class") == "secret" };

@id("project-p1")
permit(principal, action == Hyok::Action::"encrypt", resource)
when { context.encryption_context.hasTag("project") && context.encryption_context.getTag("project") == "p1" && context.hour >= 8 };

@id("boom-fails")
forbid(principal, action == Hyok::Action::"put", resource)
when { context.encryption_context.hasTag("boom") && context.now * 9223372036854775807 > 0 };

@id("overflow-fails")
forbid(principal == Hyok::Identity::"dave", action, resource)
when { context.now * 9223372036854775807 > 0 };

@id("eu-tenant")
forbid(principal, action, resource is Hyok::Object)
when { resource.key like "eu/*" && !context.encryption_context.hasTag("tenant") };

@id("night")
forbid(principal, action == Hyok::Action::"decrypt", resource)
unless { context.hour >= 6 || context.break_glass };

@id("xks-s3")
permit(principal == Hyok::Caller::"arn:aws:iam::111122223333:role/s3", action == Hyok::Action::"xks-encrypt", resource == Hyok::Key::"k1")
when { context.via_service == "s3.amazonaws.com" };

@id("xks-account")
permit(principal is Hyok::Caller, action in [Hyok::Action::"xks-encrypt", Hyok::Action::"xks-decrypt"], resource)
when { principal.account == "111122223333" };

@id("xks-not-999")
forbid(principal, action in [Hyok::Action::"xks-encrypt", Hyok::Action::"xks-decrypt"], resource)
when { principal.account == "999999999999" };

@id("admin")
permit(principal == Hyok::Identity::"root", action == Hyok::Action::"key-admin", resource);
"#;

/// Named permits for many identities, as a team-per-keyring policy has.
fn team_policies(n: usize) -> String {
    let mut p = String::new();
    for i in 0..n {
        p.push_str(&format!(
            "@id(\"team-{i}\")\npermit(principal == Hyok::Identity::\"user-{i}\", action in [Hyok::Action::\"encrypt\", Hyok::Action::\"decrypt\"], resource)\nwhen {{ context.keyring == \"team-{i}\" }};\n"
        ));
    }
    p
}

/// Unconstrained forbids that never apply, so each named identity's subset repeats them.
fn general_policies(n: usize) -> String {
    let mut p = String::new();
    for i in 0..n {
        p.push_str(&format!(
            "@id(\"rule-{i}\")\nforbid(principal, action, resource is Hyok::Object)\nwhen {{ resource.bucket == \"never-{i}\" }};\n"
        ));
    }
    p
}

fn principals() -> Vec<Principal> {
    vec![
        Principal::Identity("alice".into()),
        Principal::Identity("bob".into()),
        Principal::Identity("carol".into()),
        Principal::Identity("dave".into()),
        Principal::Identity("user-3".into()),
        Principal::Identity("root".into()),
        Principal::Identity("nobody".into()),
        Principal::Credential("AK1".into()),
        Principal::Credential("AK2".into()),
        Principal::Caller("arn:aws:iam::111122223333:role/s3".into()),
        Principal::Caller("arn:aws:iam::999999999999:role/x".into()),
    ]
}

fn object(bucket: &str, key: &str) -> Resource {
    Resource::Object {
        url: format!("s3://{bucket}/{key}"),
        store: "s3".into(),
        bucket: bucket.into(),
        key: key.into(),
    }
}

fn resources() -> Vec<Resource> {
    vec![
        object("data", "eu/2026/a.csv"),
        object("data", "keep/b"),
        object("other", "c"),
        Resource::Keyring("team-3".into()),
        Resource::Key("k1".into()),
    ]
}

fn contexts() -> Vec<Vec<(&'static str, &'static str)>> {
    vec![
        vec![],
        vec![("class", "secret")],
        vec![("class", "public"), ("tenant", "acme")],
        vec![("project", "p1")],
        vec![("project", "p1"), ("boom", "1"), ("tenant", "acme")],
        vec![("boom", "1"), ("class", "secret")],
    ]
}

/// Every combination; XKS actions carry XKS facts, the others an encryption context.
fn queries() -> Vec<Query> {
    let mut out = Vec::new();
    // 03:00 and 10:00 UTC on 2026-12-05.
    let times = [1_796_439_600u64, 1_796_464_800];
    for principal in principals() {
        for action in Action::ALL {
            for resource in resources() {
                for (c, ec) in contexts().into_iter().enumerate() {
                    for (t, secs) in times.iter().enumerate() {
                        let xks = matches!(action, Action::XksEncrypt | Action::XksDecrypt);
                        let facts = Facts {
                            encryption_context: ec
                                .iter()
                                .map(|(k, v)| (k.to_string(), v.to_string()))
                                .collect(),
                            keyring: if c % 2 == 0 { "team-3" } else { "other" }.into(),
                            via: if t == 0 { "gateway" } else { "cli" }.into(),
                            now: UNIX_EPOCH + Duration::from_secs(*secs),
                            break_glass: c == 3,
                            xks: xks.then(|| XksFacts {
                                kms_key_arn: "arn:aws:kms:eu-west-1:111122223333:key/x".into(),
                                kms_operation: "Encrypt".into(),
                                via_service: if c % 2 == 0 { "s3.amazonaws.com" } else { "" }
                                    .into(),
                                ..XksFacts::default()
                            }),
                            ..Facts::default()
                        };
                        out.push(Query {
                            principal: principal.clone(),
                            action,
                            resource: resource.clone(),
                            facts,
                        });
                    }
                }
            }
        }
    }
    out
}

#[derive(Default, Debug)]
struct Seen {
    allowed: usize,
    forbidden: usize,
    default_deny: usize,
    failed: usize,
}

/// Decide every query both ways; they must agree on everything.
fn compare(engine: &Engine, queries: &[Query]) -> Seen {
    let mut seen = Seen::default();
    for q in queries {
        let fast: Decision = engine.decide(q).unwrap();
        let whole = engine.decide_whole(q).unwrap();
        assert_eq!(fast, whole, "{q:?}");
        if fast.allowed {
            seen.allowed += 1;
        } else if fast.policies == ["default-deny"] {
            seen.default_deny += 1;
        } else {
            seen.forbidden += 1;
        }
        if !fast.errors.is_empty() {
            seen.failed += 1;
        }
    }
    seen
}

fn engine(texts: &[(&str, &str)], default: DefaultDecision) -> Engine {
    let sources: Vec<(String, &str)> = texts.iter().map(|(n, t)| (n.to_string(), *t)).collect();
    Engine::from_texts(&sources, None, default, None).unwrap()
}

fn find<'a>(qs: &'a [Query], p: &str, a: Action, ec: &[&str], t: usize) -> &'a Query {
    qs.iter()
        .find(|q| {
            q.principal == Principal::Identity(p.into())
                && q.action == a
                && q.resource == Resource::Keyring("team-3".into())
                && q.facts
                    .encryption_context
                    .keys()
                    .map(String::as_str)
                    .eq(ec.iter().copied())
                && q.facts.via == if t == 0 { "gateway" } else { "cli" }
        })
        .unwrap()
}

#[test]
fn the_index_decides_as_the_whole_set() {
    let teams = team_policies(20);
    let e = engine(
        &[("main.cedar", POLICIES), ("teams.cedar", &teams)],
        DefaultDecision::Deny,
    );
    let qs = queries();
    let seen = compare(&e, &qs);
    // The set is varied enough to mean something.
    assert!(seen.allowed > 100, "{seen:?}");
    assert!(seen.forbidden > 100, "{seen:?}");
    assert!(seen.default_deny > 100, "{seen:?}");
    assert!(seen.failed > 10, "{seen:?}");

    // Forbid overrides permit: alice may do anything, but not encrypt `class=secret`.
    let q = find(&qs, "alice", Action::Encrypt, &["class"], 1);
    let d = e.decide(q).unwrap();
    assert!(!d.allowed);
    assert_eq!(d.policies, ["no-secret"]);
    // A permit guarded by a pair applies with the pair (10:00), and a forbid guarded by
    // another pair that fails refuses.
    let q = find(&qs, "nobody", Action::Encrypt, &["project"], 1);
    assert_eq!(e.decide(q).unwrap().policies, ["project-p1"]);
    let q = find(&qs, "alice", Action::Put, &["boom", "project", "tenant"], 1);
    let d = e.decide(q).unwrap();
    assert!(!d.allowed);
    assert_eq!(d.policies, ["boom-fails"]);
    assert!(d.errors[0].starts_with("boom-fails: "), "{d:?}");
    // Nothing applies: default deny.
    let q = find(&qs, "nobody", Action::Get, &[], 1);
    assert_eq!(e.decide(q).unwrap().policies, ["default-deny"]);
}

#[test]
fn the_index_decides_as_the_whole_set_with_default_allow() {
    let e = engine(&[("main.cedar", POLICIES)], DefaultDecision::Allow);
    let qs = queries();
    let seen = compare(&e, &qs);
    assert!(seen.allowed > 100 && seen.forbidden > 100, "{seen:?}");
    assert_eq!(seen.default_deny, 0, "{seen:?}");
}

#[test]
fn many_named_principals_share_their_type_subset_and_decide_the_same() {
    // 160 named × 170 unconstrained × 9 actions is past the index's bound for
    // per-principal subsets: named policies then join their type's subset.
    let teams = team_policies(160);
    let general = general_policies(160);
    let e = engine(
        &[
            ("main.cedar", POLICIES),
            ("teams.cedar", &teams),
            ("general.cedar", &general),
        ],
        DefaultDecision::Deny,
    );
    let qs: Vec<Query> = queries()
        .into_iter()
        .filter(|q| matches!(q.action, Action::Encrypt | Action::Put | Action::XksEncrypt))
        .step_by(3)
        .collect();
    let seen = compare(&e, &qs);
    assert!(seen.allowed > 10 && seen.forbidden > 10, "{seen:?}");
}

#[test]
fn thousands_of_policies_are_decided_without_an_index_and_the_same() {
    // 3,800 policies × 3 principal types × 9 actions is past the bound of any index.
    let general = general_policies(3800);
    let e = engine(
        &[("main.cedar", POLICIES), ("general.cedar", &general)],
        DefaultDecision::Deny,
    );
    let qs: Vec<Query> = queries().into_iter().step_by(97).collect();
    let seen = compare(&e, &qs);
    assert!(
        seen.allowed > 0 && seen.forbidden + seen.default_deny > 0,
        "{seen:?}"
    );
}
