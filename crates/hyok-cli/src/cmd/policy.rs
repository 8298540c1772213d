//! `hyok policy check|explain|schema`: what the `[policy]` engine would decide for a request,
//! and why, without doing anything (no key store, storage call or audit record).

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use clap::{Args, Subcommand};
use hyok::policy::{Action, Facts, Principal, Query, Resource, XksFacts};
use hyok::text::{escape_controls, escape_str};
use hyok::Session;

use crate::Usage;

/// `hyok policy …`.
#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Decide one request: prints `allow` or `deny` with the deciding policy ids; exit 1
    /// when denied. Nothing is run, no key or store is touched.
    Check(RequestArgs),
    /// As check, and show the request as the policies see it and the text of each deciding
    /// policy.
    Explain(RequestArgs),
    /// Print the built-in Cedar schema (entity types, actions, context attributes).
    Schema,
}

/// A request to decide: `ACTION RESOURCE` and its circumstances.
#[derive(Debug, Args)]
pub(crate) struct RequestArgs {
    /// encrypt, decrypt, put, get, list, delete, key-admin, xks-encrypt or xks-decrypt.
    #[arg(value_name = "ACTION")]
    pub(crate) action: String,
    /// A location (s3://B/K, file:///P, NAME:KEY, :KEY), `keyring:NAME` or `key:ID`.
    #[arg(value_name = "RESOURCE")]
    pub(crate) resource: String,
    /// Who asks: identity:NAME, credential:ACCESS-KEY-ID or caller:ARN (default: this
    /// user's identity, as HYOK_AUDIT_IDENTITY or $USER).
    #[arg(long, value_name = "KIND:NAME")]
    pub(crate) principal: Option<String>,
    /// Encryption context pair; repeat for several.
    #[arg(short = 'c', long = "context", value_name = "KEY=VALUE")]
    pub(crate) context: Vec<String>,
    /// Suite id (context.suite), e.g. 0x0478.
    #[arg(long, value_name = "ID")]
    pub(crate) suite: Option<String>,
    /// Keyring name (context.keyring; default: the configuration's default keyring).
    #[arg(long, value_name = "NAME")]
    pub(crate) keyring: Option<String>,
    /// Destination region (default: the location's store setting).
    #[arg(long, value_name = "REGION")]
    pub(crate) region: Option<String>,
    /// Destination endpoint URL (default: the location's store setting).
    #[arg(long, value_name = "URL")]
    pub(crate) endpoint: Option<String>,
    /// Front end (context.via): cli, gateway, xks or api.
    #[arg(long, value_name = "NAME", default_value = "cli")]
    pub(crate) via: String,
    /// The client's address (context.source_ip).
    #[arg(long, value_name = "IP")]
    pub(crate) source_ip: Option<IpAddr>,
    /// Decide as at this time: seconds since 1970, UTC (default: now).
    #[arg(long, value_name = "SECONDS")]
    pub(crate) at: Option<u64>,
    /// Set context.break_glass.
    #[arg(long)]
    pub(crate) break_glass: bool,
    /// XKS: requestMetadata.kmsKeyArn.
    #[arg(long, value_name = "ARN")]
    pub(crate) kms_key_arn: Option<String>,
    /// XKS: requestMetadata.kmsViaService.
    #[arg(long, value_name = "SERVICE")]
    pub(crate) via_service: Option<String>,
    /// XKS: requestMetadata.awsSourceVpc.
    #[arg(long, value_name = "VPC")]
    pub(crate) vpc: Option<String>,
    /// XKS: requestMetadata.awsSourceVpce.
    #[arg(long, value_name = "VPCE")]
    pub(crate) vpc_endpoint: Option<String>,
}

pub(crate) fn run(config: Option<&Path>, c: PolicyCommand) -> Result<()> {
    match c {
        PolicyCommand::Schema => {
            print!("{}", hyok::policy::schema::BUILTIN);
            Ok(())
        }
        PolicyCommand::Check(a) => decide(config, &a, false),
        PolicyCommand::Explain(a) => decide(config, &a, true),
    }
}

fn principal(s: &str) -> Result<Principal> {
    let bad = || {
        Usage::err(
            format!("--principal {}: expected KIND:NAME", escape_str(s)),
            Some("KIND is identity, credential or caller, e.g. --principal credential:AKIA123"),
        )
    };
    let (kind, name) = s.split_once(':').ok_or_else(bad)?;
    Ok(match kind {
        "identity" => Principal::Identity(name.to_owned()),
        "credential" => Principal::Credential(name.to_owned()),
        "caller" => Principal::Caller(name.to_owned()),
        _ => return Err(bad()),
    })
}

/// The resource and the region/endpoint of its store (locations only).
fn resource(session: &Session, s: &str) -> Result<(Resource, Option<String>, Option<String>)> {
    if let Some(n) = s.strip_prefix("keyring:") {
        return Ok((Resource::Keyring(n.to_owned()), None, None));
    }
    if let Some(n) = s.strip_prefix("key:") {
        return Ok((Resource::Key(n.to_owned()), None, None));
    }
    if !session.is_location(s) {
        return Err(Usage::err(
            format!(
                "{} is not a location, keyring:NAME or key:ID",
                escape_str(s)
            ),
            None,
        ));
    }
    let (url, opts) = session.resolve(s)?;
    Ok((Resource::object(&url), opts.region, opts.endpoint))
}

fn query(session: &Session, a: &RequestArgs) -> Result<Query> {
    let action: Action = a.action.parse().map_err(|e: String| Usage::err(e, None))?;
    let principal = match &a.principal {
        Some(p) => principal(p)?,
        None => session.principal().clone(),
    };
    let (resource, region, endpoint) = resource(session, &a.resource)?;
    let mut encryption_context = std::collections::BTreeMap::new();
    for pair in &a.context {
        let (k, v) = pair.split_once('=').ok_or_else(|| {
            Usage::err(format!("-c {}: expected KEY=VALUE", escape_str(pair)), None)
        })?;
        encryption_context.insert(k.to_owned(), v.to_owned());
    }
    let xks = matches!(action, Action::XksEncrypt | Action::XksDecrypt).then(|| XksFacts {
        kms_key_arn: a.kms_key_arn.clone().unwrap_or_default(),
        kms_operation: match action {
            Action::XksEncrypt => "Encrypt",
            _ => "Decrypt",
        }
        .into(),
        via_service: a.via_service.clone().unwrap_or_default(),
        vpc: a.vpc.clone().unwrap_or_default(),
        vpc_endpoint: a.vpc_endpoint.clone().unwrap_or_default(),
    });
    let facts = Facts {
        encryption_context,
        suite: a.suite.clone().unwrap_or_default(),
        keyring: a
            .keyring
            .clone()
            .or_else(|| session.file().defaults.keyring.clone())
            .unwrap_or_else(|| "keys".into()),
        region: a.region.clone().or(region).unwrap_or_default(),
        endpoint: a
            .endpoint
            .clone()
            .or(endpoint)
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_owned(),
        via: a.via.clone(),
        source_ip: a.source_ip,
        now: match a.at {
            Some(s) => UNIX_EPOCH + Duration::from_secs(s),
            None => SystemTime::now(),
        },
        break_glass: a.break_glass,
        xks,
    };
    Ok(Query {
        principal,
        action,
        resource,
        facts,
    })
}

fn decide(config: Option<&Path>, a: &RequestArgs, explain: bool) -> Result<()> {
    let session = super::session(config, None)?;
    let result = (|| -> Result<()> {
        let q = query(&session, a)?;
        let Some(engine) = session.policy() else {
            println!("allow (no [policy] and no residency rules are configured)");
            return Ok(());
        };
        let d = engine.decide(&q)?;
        if explain {
            println!("principal: {}", escape_str(&q.principal.to_string()));
            println!("action:    {}", q.action.as_str());
            println!("resource:  {}", escape_str(&q.resource.to_string()));
            for (k, v) in &q.facts.encryption_context {
                println!("context:   {}={}", escape_str(k), escape_str(v));
            }
            println!(
                "policies:  {} from {} file(s), default {:?}",
                engine.len(),
                engine.files().len(),
                engine.default_decision()
            );
        }
        println!(
            "{} (policy {})",
            if d.allowed { "allow" } else { "deny" },
            escape_str(&d.policies.join(", "))
        );
        for e in &d.errors {
            println!("error: {}", escape_str(e));
        }
        if explain {
            for id in &d.policies {
                if let Some(text) = engine.policy_text(id) {
                    println!("\n{}:", escape_str(id));
                    for line in text.lines() {
                        println!("  {}", escape_controls(line));
                    }
                }
            }
        }
        if d.allowed {
            Ok(())
        } else {
            Err(hyok::Error::Denied {
                action: q.action.as_str(),
                principal: q.principal.to_string(),
                resource: q.resource.to_string(),
                policies: d.policies,
            }
            .into())
        }
    })();
    super::finish(session, result)
}
