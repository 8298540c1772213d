//! [`Guard`]: the decision point front ends carry. A session makes one (its engine, the
//! caller as principal, the audit log); clients and object stores ask it before any key
//! store or storage call, and it records every decision in the audit log.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::engine::{Decision, Engine};
use super::request::{Action, Facts, Principal, Query, Resource};
use crate::audit::{AdminEvent, AdminOp, AuditSink, LogSink};
use crate::{EncryptionContext, Error, Result};

/// The engine, who asks and the standing circumstances, ready to decide.
#[derive(Clone, Debug)]
pub struct Guard {
    engine: Arc<Engine>,
    principal: Principal,
    base: Facts,
    resource: Option<Resource>,
    audit: Option<LogSink>,
}

/// Text of a decision for the audit record and `hyok policy explain`.
pub fn describe(q: &Query, d: &Decision) -> String {
    let mut s = format!(
        "{} {} by {} on {}: {}",
        if d.allowed { "allow" } else { "deny" },
        q.action.as_str(),
        q.principal,
        q.resource,
        d.policies.join(", ")
    );
    if q.facts.break_glass {
        s.push_str(" (break glass)");
    }
    if !d.errors.is_empty() {
        s.push_str(&format!(" [errors: {}]", d.errors.join("; ")));
    }
    s
}

impl Guard {
    /// A guard deciding for `principal`; `base` holds the circumstances every request of
    /// this front end shares (keyring, `via`, break glass).
    pub fn new(
        engine: Arc<Engine>,
        principal: Principal,
        base: Facts,
        audit: Option<LogSink>,
    ) -> Self {
        Self {
            engine,
            principal,
            base,
            resource: None,
            audit,
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Who asks.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The same guard deciding for another principal (a gateway credential).
    pub fn for_principal(&self, principal: Principal) -> Self {
        Self {
            principal,
            ..self.clone()
        }
    }

    /// The same guard with `context.via` set to `via` (`cli`, `gateway`, `xks`).
    pub fn via(&self, via: &str) -> Self {
        let mut g = self.clone();
        g.base.via = via.to_owned();
        g
    }

    /// The same guard deciding encrypt and decrypt on `resource` instead of the keyring.
    pub fn on(&self, resource: Resource) -> Self {
        Self {
            resource: Some(resource),
            ..self.clone()
        }
    }

    /// The same guard with the destination's region and endpoint in every request.
    pub fn at(&self, region: Option<&str>, endpoint: Option<&str>) -> Self {
        let mut g = self.clone();
        g.base.region = region.unwrap_or_default().to_owned();
        g.base.endpoint = endpoint
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_owned();
        g
    }

    /// The question for `action` on `resource` (or the guard's own resource, else the
    /// keyring) with these context pairs and suite.
    pub fn query(
        &self,
        action: Action,
        resource: Option<Resource>,
        context: &EncryptionContext,
        suite: Option<u16>,
    ) -> Query {
        let mut facts = self.base.clone();
        facts.now = SystemTime::now();
        facts.encryption_context = context
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        if let Some(s) = suite {
            facts.suite = format!("0x{s:04X}");
        }
        let resource = resource
            .or_else(|| self.resource.clone())
            .unwrap_or_else(|| Resource::Keyring(self.base.keyring.clone()));
        Query {
            principal: self.principal.clone(),
            action,
            resource,
            facts,
        }
    }

    /// Decide, record the decision, and refuse with [`Error::Denied`] when denied.
    pub fn check(
        &self,
        action: Action,
        resource: Option<Resource>,
        context: &EncryptionContext,
        suite: Option<u16>,
    ) -> Result<Decision> {
        let q = self.query(action, resource, context, suite);
        self.check_query(&q)
    }

    /// [`Self::check`] for a prepared question.
    pub fn check_query(&self, q: &Query) -> Result<Decision> {
        let started = Instant::now();
        let d = self.engine.decide(q)?;
        self.record(q, &d, started);
        if d.allowed {
            Ok(d)
        } else {
            Err(denied(q, &d))
        }
    }

    /// Decide over the residency rules alone, record it, and refuse when denied (the error
    /// explains the rules, see [`Error::Residency`]). `Ok(None)` without rules.
    pub fn check_residency(&self, q: &Query) -> Result<Option<Decision>> {
        let started = Instant::now();
        let Some(d) = self.engine.decide_residency(q)? else {
            return Ok(None);
        };
        self.record(q, &d, started);
        if d.allowed {
            Ok(Some(d))
        } else {
            Err(denied(q, &d))
        }
    }

    fn record(&self, q: &Query, d: &Decision, started: Instant) {
        if let Some(sink) = &self.audit {
            sink.admin(AdminEvent {
                op: AdminOp::PolicyDecision,
                key: None,
                subject: Some(q.resource.to_string()),
                message_id: None,
                detail: Some(describe(q, d)),
                error: (!d.allowed).then_some(crate::ErrorClass::Denied.as_str()),
                duration: started.elapsed(),
            });
        }
    }
}

fn denied(q: &Query, d: &Decision) -> Error {
    Error::Denied {
        action: q.action.as_str(),
        principal: q.principal.to_string(),
        resource: q.resource.to_string(),
        policies: d.policies.clone(),
    }
}
