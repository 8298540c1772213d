//! Claims for direct frames without conditional writes (docs/DESIGN.md, "What keeps AES-GCM
//! safe there"): a claimant PUTs an empty object with a name of its own, then LISTs the
//! folder, and goes on only if it sees its own claim and no other. Two claimants that both
//! went on would each have listed before the other wrote, yet each wrote before it listed.

use futures::StreamExt;
use hyok::store::{Store, StoreUrl};
use s3s::{s3_error, S3Result};

use crate::service::to_s3;

/// Put an empty claim `dir/name`, then list `dir`: whether only this claim is there.
pub(crate) async fn claim(store: &Store, dir: &StoreUrl, name: &str) -> S3Result<bool> {
    let url = dir
        .join(name)
        .map_err(|_| s3_error!(InternalError, "bad claim name"))?;
    store
        .put_whole(&url, Vec::new())
        .await
        .map_err(|e| to_s3(e.into()))?;
    let names = names_in(store, dir).await?;
    Ok(names.len() == 1 && names[0] == name)
}

/// The names of the objects under the folder `dir` (recursive, relative to it).
pub(crate) async fn names_in(store: &Store, dir: &StoreUrl) -> S3Result<Vec<String>> {
    let dir = dir.as_folder();
    let mut out = Vec::new();
    let mut list = store.list(&dir);
    while let Some(item) = list.next().await {
        let info = item.map_err(|e| to_s3(e.into()))?;
        if let Some(rest) = info.url.key().strip_prefix(dir.key()) {
            out.push(rest.to_owned());
        }
    }
    Ok(out)
}

/// Claim part `n` of length `len` of the upload in `dir` for sealing in place: the
/// upload's part size is `len` (`sizes/`), no other attempt of part `n` claimed
/// (`claims/NNNNN/`), and no Complete started (`completes/`). Returns the claim's
/// random name (the part's ETag) when all hold.
pub(crate) async fn claim_part(
    store: &Store,
    dir: &StoreUrl,
    n: i32,
    len: u64,
    claim_id: &str,
) -> S3Result<bool> {
    let sub = |s: &str| {
        dir.join(s)
            .map_err(|_| s3_error!(InternalError, "bad claim folder"))
    };
    let sizes = sub("sizes/")?;
    let claims = sub(&format!("claims/{n:05}/"))?;
    let size_name = len.to_string();
    let size_url = sizes
        .join(&size_name)
        .map_err(|_| s3_error!(InternalError, "bad claim name"))?;
    let claim_url = claims
        .join(claim_id)
        .map_err(|_| s3_error!(InternalError, "bad claim name"))?;
    // Both claims are written before anything is listed (then the three lists at once).
    let (a, b) = tokio::join!(
        store.put_whole(&size_url, Vec::new()),
        store.put_whole(&claim_url, Vec::new())
    );
    a.and(b).map_err(|e| to_s3(e.into()))?;
    let completes = sub("completes/")?;
    let (mine, all_sizes, done) = tokio::join!(
        names_in(store, &claims),
        names_in(store, &sizes),
        names_in(store, &completes)
    );
    Ok(mine? == [claim_id] && all_sizes? == [size_name] && done?.is_empty())
}
