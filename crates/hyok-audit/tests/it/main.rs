//! Integration tests of the audit log: one binary, one module per concern.
//!
//! - `tamper`: every kind of change to a log is found and named (acceptance list).
//! - `malformed`: the parsers and the verifier on hostile bytes never panic.
//! - `concurrent`: several processes append to one log; crashes leave it verifiable.
//! - `tail`: records no signature covers fail verification and are never signed over.

mod common;
mod concurrent;
mod malformed;
mod tail;
mod tamper;
