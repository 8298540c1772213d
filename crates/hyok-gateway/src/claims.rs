//! Claims for direct frames without conditional writes (docs/DESIGN.md, "What keeps AES-GCM
//! safe there"): a claimant PUTs an empty object with a name of its own, then LISTs the
//! folder, and goes on only if it sees its own claim and no other. Two claimants that both
//! went on would each have listed before the other wrote, yet each wrote before it listed.

use hyok::store::{Store, StoreUrl};
use s3s::{s3_error, S3Result};

use crate::service::to_s3;

/// Most names read from one claims folder (an upload has at most 10,000 parts, each with a
/// few records).
const MAX_NAMES: usize = 100_000;

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

/// The names of the objects directly under the folder `dir` (one level: claims are flat;
/// a sub-folder shows as `NAME/`). One LIST with a delimiter, which S3-compatible servers
/// that keep folders (s3s-fs) answer without walking the whole bucket.
pub(crate) async fn names_in(store: &Store, dir: &StoreUrl) -> S3Result<Vec<String>> {
    store
        .list_names(&dir.as_folder(), MAX_NAMES)
        .await
        .map_err(|e| to_s3(e.into()))
}

/// Claim part `n` of length `len` of the upload in `dir` for sealing in place: the
/// upload's part size is `len` (`sizes/`), no other attempt of part `n` claimed
/// (`claims/NNNNN/`), and no Complete started (`completes/`). Whether all hold.
///
/// A claimant that loses deletes its own two entries again (best effort), so that a part
/// that could not go in place (typically a last part of another size) does not make later
/// parts, or the Complete, fall back. That keeps the argument above: only a winner's
/// entries must stay, and a winner never deletes them; a loser's entry seen by another
/// claimant can only make that one lose too.
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
    // One size entry per claimant, `sizes/L/ID`, so that a loser can delete its own; the
    // listing of `sizes/` (one level, with a delimiter) shows one name per size, however
    // many parts claimed it: a part's check costs the same at part 2 and at part 10,000.
    // (Flat `L-ID` entries were listed one per part, which made an upload's claims grow
    // with the square of its parts.) Flat entries of a gateway that wrote them still count.
    let size_url = sizes
        .join(&format!("{len}/{claim_id}"))
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
    let won = mine? == [claim_id] && only_size(&all_sizes?, len) && done?.is_empty();
    if !won {
        let _ = tokio::join!(store.delete(&size_url), store.delete(&claim_url));
    }
    Ok(won)
}

/// Whether the listing of `sizes/` shows part size `len` and no other: its folder `len/`
/// (this claimant's entry is in it) and otherwise only flat entries `len-…` of an earlier
/// gateway.
fn only_size(names: &[String], len: u64) -> bool {
    let (folder, flat) = (format!("{len}/"), format!("{len}-"));
    names.contains(&folder) && names.iter().all(|s| *s == folder || s.starts_with(&flat))
}

#[cfg(test)]
mod tests {
    use super::only_size;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn one_size_wins_and_any_other_loses() {
        assert!(only_size(&names(&["8388608/"]), 8 << 20));
        assert!(only_size(&names(&["8388608-0a1b", "8388608/"]), 8 << 20));
        // Another size, in either layout, or a size that merely starts with the same digits.
        assert!(!only_size(&names(&["5242880/", "8388608/"]), 8 << 20));
        assert!(!only_size(&names(&["5242880-0a1b", "8388608/"]), 8 << 20));
        assert!(!only_size(&names(&["83886080/", "8388608/"]), 8 << 20));
        // Its own entry not listed: the store is not what the argument needs; lose.
        assert!(!only_size(&names(&[]), 8 << 20));
        assert!(!only_size(&names(&["8388608-0a1b"]), 8 << 20));
    }
}
