//! `hyok rm`: delete an object, or with -r everything under a prefix.

use std::io::{self, IsTerminal};
use std::path::Path;

use anyhow::Result;
use futures::StreamExt;

use super::storage::{list_all, report_unlisted, Env};
use crate::args::RmArgs;
use crate::Usage;

pub(crate) fn rm(config: Option<&Path>, a: RmArgs) -> Result<()> {
    let env = Env::open(config, None)?;
    let result = rm_run(&env, &a);
    env.finish(result)
}

fn rm_run(env: &Env, a: &RmArgs) -> Result<()> {
    let (url, store) = env.open_location(&a.location)?;
    let may_delete = |u: &hyok::store::StoreUrl| {
        env.session.authorize(
            hyok::policy::Action::Delete,
            hyok::policy::Resource::object(u),
        )
    };
    if !a.recursive {
        may_delete(&url)?;
        if url.is_folder() {
            return Err(Usage::err(
                format!("{url} is a prefix"),
                Some("pass -r to delete everything under it"),
            ));
        }
        env.rt
            .block_on(async {
                store.head(&url).await?;
                store.delete(&url).await
            })
            .map_err(hyok::Error::from)?;
        eprintln!("hyok: deleted {url}");
        return Ok(());
    }
    let folder = url.as_folder();
    let (all, unlisted) = list_all(env, &store, &folder);
    if !unlisted.is_empty() {
        report_unlisted(&unlisted);
        let n = unlisted.len();
        if let Some(first) = unlisted.into_iter().next() {
            return Err(anyhow::Error::from(first).context(format!(
                "{n} object(s) under {folder} could not be listed; nothing deleted"
            )));
        }
    }
    if all.is_empty() {
        eprintln!("hyok: no objects under {folder}");
        return Ok(());
    }
    if !a.yes {
        if !io::stdin().is_terminal() {
            return Err(Usage::err(
                format!(
                    "refusing to delete {} object(s) under {folder} without confirmation",
                    all.len()
                ),
                Some("pass --yes to confirm"),
            ));
        }
        eprint!("delete {} object(s) under {folder}? [y/N] ", all.len());
        let mut answer = String::new();
        io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            eprintln!("hyok: nothing deleted");
            return Ok(());
        }
    }
    // Every object is decided before the first is deleted.
    for i in &all {
        may_delete(&i.url)?;
    }
    let n = all.len();
    let results: Vec<Result<(), hyok::store::Error>> = env.rt.block_on(
        futures::stream::iter(all)
            .map(|i| {
                let store = store.clone();
                async move { store.delete(&i.url).await }
            })
            .buffer_unordered(16)
            .collect(),
    );
    let failed: Vec<_> = results.into_iter().filter_map(|r| r.err()).collect();
    if let Some(e) = failed.into_iter().next() {
        return Err(anyhow::Error::from(hyok::Error::from(e)).context("deleting"));
    }
    eprintln!("hyok: deleted {n} object(s) under {folder}");
    Ok(())
}
