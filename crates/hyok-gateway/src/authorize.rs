//! Who may do what: every handler starts with [`Gateway::authorize_bucket`], which finds
//! the caller's credential (s3s has verified the signature with its secret), checks the
//! bucket name (and key), the credential's bucket patterns and, for writes, the residency
//! rules of the configuration (`[[residency.allow]]`, through the `hyok` facade) against
//! the backend location the object would go to. Then [`Gateway::decide`] asks the
//! `[policy]` (the credential as principal) about the object, before any backend or
//! key-store call.

use std::sync::Arc;

use hyok::policy::Action;
use s3s::auth::Credentials;
use s3s::{s3_error, S3Error, S3Result};

use crate::access::Patterns;
use crate::backend::{check_bucket, check_key};
use crate::service::{to_s3, Caller, Gateway};

/// What a request needs of a bucket.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Scope<'a> {
    /// The whole bucket (create, delete).
    WholeBucket,
    /// Any part of it (head, location, batch deletes checked again per key).
    AnyKey,
    /// Reading or deleting one object.
    Read(&'a str),
    /// Writing one object: also checked against the residency rules.
    Write(&'a str),
    /// Listing the keys under a prefix.
    List(&'a str),
}

impl Gateway {
    /// The caller's credential.
    pub(crate) fn caller(&self, c: &Option<Credentials>) -> S3Result<Arc<Caller>> {
        c.as_ref()
            .and_then(|c| self.callers.get(&c.access_key))
            .cloned()
            .ok_or_else(|| s3_error!(AccessDenied, "Signature is required"))
    }

    /// Count and log a refusal (the client sees a bare AccessDenied).
    pub(crate) fn deny(&self, caller: &Caller, what: &str) -> S3Error {
        self.metrics.denied();
        tracing::info!(access_key = %caller.id, "access denied: {what}");
        s3_error!(AccessDenied)
    }

    /// Whether `caller` may reach the object `bucket`/`key` (names checked first).
    pub(crate) fn may_object(&self, caller: &Caller, bucket: &str, key: &str) -> S3Result<()> {
        check_bucket(bucket)?;
        check_key(key)?;
        if caller.patterns.object(bucket, key) {
            Ok(())
        } else {
            Err(self.deny(caller, &format!("{bucket}/{key}")))
        }
    }

    /// The residency rules allow the backend location of `bucket`/`key`.
    fn permit_write(&self, caller: &Caller, bucket: &str, key: &str) -> S3Result<()> {
        let store = self.backend.store(bucket)?;
        let url = self.backend.object_url(bucket, key)?;
        caller.session.permit(&store, &url).map_err(|e| {
            self.metrics.denied();
            tracing::info!(access_key = %caller.id, "refused by residency: {bucket}/{key}");
            to_s3(e)
        })
    }

    /// The `[policy]` decision on `action` by `caller` on the object (or prefix) `key` of
    /// `bucket`, recorded in the audit log with the policies that decided; a denial is
    /// AccessDenied. Makes no backend or key-store call, so handlers call it first.
    pub(crate) fn decide(
        &self,
        caller: &Caller,
        action: Action,
        bucket: &str,
        key: &str,
    ) -> S3Result<()> {
        if caller.session.policy().is_none() {
            return Ok(());
        }
        let url = if key.is_empty() {
            self.backend.bucket_url(bucket)?
        } else {
            self.backend.object_url(bucket, key)?
        };
        self.objects(caller, bucket)?
            .check_policy(action, &url)
            .map_err(|e| {
                self.metrics.denied();
                tracing::info!(access_key = %caller.id, "refused by policy: {} {bucket}/{key}", action.as_str());
                to_s3(e)
            })
    }

    /// The caller of a request for `bucket`, once its credential may do `what` there.
    pub(crate) fn authorize_bucket(
        &self,
        creds: &Option<Credentials>,
        bucket: &str,
        what: &str,
        scope: Scope<'_>,
    ) -> S3Result<Arc<Caller>> {
        let caller = self.caller(creds)?;
        let p = &caller.patterns;
        match scope {
            Scope::Read(key) => self.may_object(&caller, bucket, key)?,
            Scope::Write(key) => {
                self.may_object(&caller, bucket, key)?;
                self.permit_write(&caller, bucket, key)?;
            }
            Scope::WholeBucket | Scope::AnyKey | Scope::List(_) => {
                check_bucket(bucket)?;
                let ok = match scope {
                    Scope::WholeBucket => p.whole_bucket(bucket),
                    Scope::List(prefix) => p.may_list(bucket, prefix),
                    _ => p.touches_bucket(bucket),
                };
                if !ok {
                    return Err(self.deny(&caller, &format!("{what} {bucket}")));
                }
            }
        }
        Ok(caller)
    }
}
