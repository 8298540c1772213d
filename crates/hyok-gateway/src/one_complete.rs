//! One CompleteMultipartUpload per upload at a time in this gateway. A client whose
//! Complete timed out or lost its connection retries it while the first attempt still runs
//! (it runs to its end: `keepalive.rs`). Run side by side, the retry would lose the claim to
//! seal the header, take the fallback and find the backend upload completed under it (on
//! s3s-fs a 403, on S3 a NoSuchUpload), and the client would see an error for an upload that
//! succeeds. In turn, the retry starts once the first attempt has ended: the upload is then
//! gone and the retry is answered from the object (`completed_before`), or the first failed
//! and the retry completes it. Completes of one upload through two replicas still meet only
//! at the backend (DESIGN.md, "Why the fallback and a direct Complete cannot mix their
//! bytes").

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

/// The Completes running in this gateway, by upload.
#[derive(Default)]
pub(crate) struct OneComplete(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

/// The turn of one Complete of an upload; the next one's starts when it is dropped.
pub(crate) struct Turn<'a> {
    owner: &'a OneComplete,
    key: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl OneComplete {
    /// Wait until no other Complete of `upload` (in `bucket`) runs here, then take the turn.
    pub(crate) async fn turn(&self, bucket: &str, upload: &str) -> Turn<'_> {
        let key = format!("{bucket}/{upload}");
        let lock = {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(key.clone()).or_default().clone()
        };
        let guard = lock.lock_owned().await;
        Turn {
            owner: self,
            key,
            guard: Some(guard),
        }
    }

    /// Uploads with a Complete running or waiting here.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut map = self.owner.0.lock().unwrap_or_else(|e| e.into_inner());
        drop(self.guard.take());
        // Nobody else holds or waits for this upload's lock: forget it. A newcomer clones
        // it only under the map's lock, so it cannot slip in between.
        if map
            .get(&self.key)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn completes_of_one_upload_take_turns_and_others_do_not_wait() {
        let one = Arc::new(OneComplete::default());
        let log = Arc::new(Mutex::new(Vec::new()));
        let run = |upload: &'static str, name: &'static str, secs: u64| {
            let (one, log) = (one.clone(), log.clone());
            tokio::spawn(async move {
                let _turn = one.turn("b", upload).await;
                log.lock().unwrap().push(format!("{name} start"));
                tokio::time::sleep(Duration::from_secs(secs)).await;
                log.lock().unwrap().push(format!("{name} end"));
            })
        };
        let first = run("u1", "first", 10);
        tokio::time::sleep(Duration::from_millis(10)).await;
        let retry = run("u1", "retry", 1);
        let other = run("u2", "other", 1);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(one.len(), 2);
        for t in [first, retry, other] {
            t.await.unwrap();
        }
        let log = log.lock().unwrap().clone();
        let at = |s: &str| log.iter().position(|l| l == s).unwrap();
        assert!(at("retry start") > at("first end"), "{log:?}");
        assert!(at("other end") < at("first end"), "{log:?}");
        assert_eq!(one.len(), 0, "nothing left once all ended");
    }

    #[tokio::test]
    async fn a_turn_dropped_early_frees_the_upload() {
        let one = OneComplete::default();
        drop(one.turn("b", "u").await);
        let _again = one.turn("b", "u").await;
        assert_eq!(one.len(), 1);
    }
}
