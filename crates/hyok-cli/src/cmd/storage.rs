//! What every storage command (`cp`, `cat`, `ls`, `rm`) shares: its session and runtime,
//! opening a location, and listing a prefix one object at a time.

use std::path::Path;

use anyhow::Result;
use futures::StreamExt;
use hyok::objects::Objects;
use hyok::store::{ObjectInfo, Store, StoreUrl, Transfer};
use hyok::{Session, Settings};

use crate::args::StoreKeyArgs;

/// A storage command's session (configuration, keys, cache, audit) and runtime.
pub(super) struct Env {
    pub(super) session: Session,
    pub(super) rt: tokio::runtime::Runtime,
}

impl Env {
    /// The session of a command; `keys` for commands that encrypt or decrypt.
    pub(super) fn open(config: Option<&Path>, keys: Option<&StoreKeyArgs>) -> Result<Self> {
        let session = super::session(config, keys.map(|k| (&k.select, &k.cache)))?;
        Ok(Self {
            session,
            rt: super::runtime()?,
        })
    }

    /// A command's environment over a session it opened itself.
    pub(super) fn from_session(session: Session) -> Result<Self> {
        Ok(Self {
            session,
            rt: super::runtime()?,
        })
    }

    /// Close the audit log (exit checkpoint) and fold its outcome into the command's.
    pub(super) fn finish<T>(self, result: Result<T>) -> Result<T> {
        let Self { session, rt } = self;
        drop(rt);
        super::finish(session, result)
    }

    /// Resolve a location and open its store.
    pub(super) fn open_location(&self, location: &str) -> Result<(StoreUrl, Store)> {
        let (url, opts) = self.session.resolve(location)?;
        let store = self.session.open_store(&url, opts)?;
        Ok((url, store))
    }

    /// Encrypted objects of `store` with the session's keys.
    pub(super) fn objects(
        &self,
        store: Store,
        settings: Settings,
        transfer: Transfer,
    ) -> Result<Objects> {
        Ok(self
            .session
            .objects(store, settings, transfer, self.rt.handle().clone())?)
    }
}

/// Everything under a prefix, sorted by key, and the listing errors of single entries
/// (an object whose name the store cannot represent fails alone, not the whole listing).
pub(super) fn list_all(
    env: &Env,
    store: &Store,
    url: &StoreUrl,
) -> (Vec<ObjectInfo>, Vec<hyok::Error>) {
    let results: Vec<_> = env.rt.block_on(store.list(url).collect::<Vec<_>>());
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for r in results {
        match r {
            Ok(i) => ok.push(i),
            Err(e) => failed.push(hyok::Error::from(e)),
        }
    }
    ok.sort_by(|a, b| a.url.key().cmp(b.url.key()));
    (ok, failed)
}

/// Report each entry that could not be listed; the command then fails at the end.
pub(super) fn report_unlisted(failed: &[hyok::Error]) {
    for e in failed {
        eprintln!(
            "hyok: skipped: {}",
            hyok::text::escape_controls(&e.to_string())
        );
    }
}
