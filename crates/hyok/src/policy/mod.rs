//! Policies: who may do what with which keys and objects, decided by one Cedar engine for
//! every front end (CLI, `Session` API, S3 gateway, XKS proxy).
//!
//! - [`schema`]: the entity types, actions and context hyok sends (`hyok policy schema`).
//! - [`engine`]: `[policy] files` loaded and validated at start; decisions.
//! - [`request`]: one question in hyok's terms and its Cedar form.
//! - `index`: the per-action, per-principal policy subsets a decision evaluates.
//! - [`guard`]: the decision point a session hands to clients and object stores; it
//!   records every decision in the audit log.
//! - [`residency`]: the `[[residency.allow]]` shorthand, translated into a Cedar policy.
//!
//! See `docs/POLICY.md`.

pub mod engine;
pub mod guard;
mod index;
pub mod request;
pub mod residency;
pub mod schema;

pub use engine::{Decision, DefaultDecision, Engine, PolicyConfig};
pub use guard::Guard;
pub use request::{Action, Facts, Principal, Query, Resource, XksFacts};
pub use residency::{AllowRule, Destination, Residency};
