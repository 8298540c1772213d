//! `hyok cp` (dispatch to upload or download) and `hyok cat`.

use std::path::Path;

use anyhow::Result;
use hyok::{AlgorithmSuite, EncryptOptions, Settings};

use super::crypt::context;
use super::download::{download_one, download_tree};
use super::storage::Env;
use super::upload::{upload_one, upload_tree};
use crate::args::{CatArgs, CpArgs, SuiteArg};
use crate::io::{Content, Output};
use crate::Usage;

pub(super) fn settings(a: &CpArgs) -> Settings {
    Settings {
        suite: match a.suite {
            SuiteArg::Committed => AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
            SuiteArg::CommittedSigned => AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384,
        },
        encrypt: EncryptOptions {
            frame_length: a.frame_length,
            ..EncryptOptions::default()
        },
        ..Settings::default()
    }
}

pub(crate) fn cp(config: Option<&Path>, a: CpArgs) -> Result<()> {
    let env = Env::open(config, Some(&a.keys))?;
    let result = cp_run(&env, &a);
    env.finish(result)
}

fn cp_run(env: &Env, a: &CpArgs) -> Result<()> {
    let src_store = env.session.is_location(&a.src);
    let dst_store = env.session.is_location(&a.dst);
    match (src_store, dst_store) {
        (false, true) => {
            if a.range.is_some() {
                return Err(Usage::err("--range applies to downloads only", None));
            }
            if a.recursive {
                upload_tree(env, a)
            } else {
                upload_one(env, a)
            }
        }
        (true, false) => {
            if a.recursive {
                if a.range.is_some() {
                    return Err(Usage::err("--range cannot be combined with -r", None));
                }
                download_tree(env, a)
            } else {
                download_one(env, a)
            }
        }
        (true, true) => Err(Usage::err(
            "copying from one store to another is not supported yet",
            Some("download with `hyok cp STORE-LOCATION FILE`, then upload the file"),
        )),
        (false, false) => Err(Usage::err(
            format!(
                "neither {} nor {} is a store location",
                hyok::text::escape_str(&a.src),
                hyok::text::escape_str(&a.dst)
            ),
            Some("store locations are s3://BUCKET/KEY, file:///DIR/KEY, NAME:KEY (configured store) or :KEY (default store)"),
        )),
    }
}

pub(crate) fn cat(config: Option<&Path>, a: CatArgs) -> Result<()> {
    let env = Env::open(config, Some(&a.keys))?;
    let result = cat_run(&env, &a);
    env.finish(result)
}

fn cat_run(env: &Env, a: &CatArgs) -> Result<()> {
    let (url, store) = env.open_location(&a.src)?;
    if url.is_folder() {
        return Err(Usage::err(
            format!("{url} is a prefix, not an object"),
            None,
        ));
    }
    let objects = env
        .objects(store, Settings::default(), env.session.transfer(None, None))?
        .bind_location(env.session.bind_location(false));
    let reproduced = context(&a.keys.context)?;
    let mut out = Output::open(&None, &None, false, Content::Plaintext(a.release.release()))?;
    let gate = out.gate();
    objects
        .get_inspecting(&url, out.writer(), a.range, &reproduced, &mut |h| {
            if let Some(g) = &gate {
                g.set_signed(h.suite.signature().is_some());
            }
        })
        .map_err(|e| out.explain(e.into()))?;
    out.commit(false)
}
