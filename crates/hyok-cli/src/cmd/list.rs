//! `hyok ls`: what is stored under a location, described without any key. Names,
//! wrapping keys and contexts come from the store and the objects: escaped.

use std::io::{self, Write};
use std::path::Path;

use anyhow::Result;
use futures::StreamExt;
use hyok::objects::ObjectSummary;
use hyok::store::Backend;
use hyok::text::escape_str;

use super::storage::{list_all, report_unlisted, Env};
use crate::args::LsArgs;

pub(crate) fn ls(config: Option<&Path>, a: LsArgs) -> Result<()> {
    let env = Env::open(config, None)?;
    let result = ls_run(&env, &a);
    env.finish(result)
}

fn ls_run(env: &Env, a: &LsArgs) -> Result<()> {
    let (url, store) = env.open_location(&a.location)?;
    env.session.authorize(
        hyok::policy::Action::List,
        hyok::policy::Resource::object(&url),
    )?;
    // An object name lists that object; otherwise the location is a prefix.
    let single = if url.is_folder() {
        None
    } else {
        env.rt
            .block_on(store.try_head(&url))
            .map_err(hyok::Error::from)?
    };
    let (base, infos, unlisted) = match single {
        Some(i) => (url.clone(), vec![i], Vec::new()),
        None => {
            let folder = url.as_folder();
            let (v, failed) = list_all(env, &store, &folder);
            (folder, v, failed)
        }
    };
    if infos.is_empty() && unlisted.is_empty() {
        let exists = match base.local_path() {
            Some(p) => p.is_dir(),
            None => base.key().is_empty(), // a bucket's root may be empty
        };
        if !exists {
            return Err(hyok::Error::Store(hyok::store::Error::NotFound(url.to_string())).into());
        }
    }
    // Describing objects needs no key.
    let catalog = env.session.catalog(store.clone(), env.rt.handle().clone());
    let long = a.long;
    let summaries: Vec<std::result::Result<ObjectSummary, hyok::Error>> = env.rt.block_on(
        futures::stream::iter(infos)
            .map(|info| {
                let (catalog, store) = (catalog.clone(), store.clone());
                async move {
                    let info = if store.backend() == Backend::S3 && !long {
                        store.head(&info.url).await?
                    } else {
                        info
                    };
                    tokio::task::spawn_blocking(move || catalog.describe(&info, long))
                        .await
                        .map_err(|e| hyok::Error::io("describing an object", e.into()))
                }
            })
            .buffered(16)
            .collect(),
    );
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut count = 0;
    let mut failed = unlisted;
    for s in summaries {
        let s = match s {
            Ok(s) => s,
            Err(e) => {
                failed.push(e);
                continue;
            }
        };
        count += 1;
        writeln!(out, "{}", line(&s, &base))?;
        if long {
            let t = humantime::format_rfc3339_seconds(s.last_modified);
            writeln!(out, "    stored {} bytes, modified {t}", s.stored_len)?;
            if let Some(ctx) = &s.context {
                let pairs: Vec<String> = ctx
                    .iter()
                    .map(|(k, v)| format!("{}={}", escape_str(k), escape_str(v)))
                    .collect();
                writeln!(
                    out,
                    "    context: {}",
                    if pairs.is_empty() {
                        "(empty)".to_owned()
                    } else {
                        pairs.join(", ")
                    }
                )?;
            }
        }
    }
    out.flush()?;
    report_unlisted(&failed);
    if count == 0 && failed.is_empty() {
        eprintln!("hyok: no objects under {url}");
    }
    let n = failed.len();
    match failed.into_iter().next() {
        None => Ok(()),
        Some(first) => Err(anyhow::Error::from(first)
            .context(format!("{n} object(s) under {base} could not be listed"))),
    }
}

/// One line of `ls`: plaintext size, suite, wrapping keys, name (escaped).
fn line(s: &ObjectSummary, base: &hyok::store::StoreUrl) -> String {
    let name = if &s.url == base {
        s.url.file_name().unwrap_or("").to_owned()
    } else {
        s.url.key()[base.key().len()..].to_owned()
    };
    let name = escape_str(&name);
    let size = s
        .plaintext_len
        .map_or_else(|| "?".to_owned(), |n| n.to_string());
    if !s.is_message {
        format!(
            "{:>12}  {:<6}  {:<24}  {name}",
            "-", "-", "(not an hyok object)"
        )
    } else {
        let keys: Vec<String> = s.wrapping_keys.iter().map(|k| escape_str(k)).collect();
        format!(
            "{size:>12}  {:<6}  {:<24}  {name}",
            escape_str(s.suite.as_deref().unwrap_or("?")),
            keys.join(",")
        )
    }
}
