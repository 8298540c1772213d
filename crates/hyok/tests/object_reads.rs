//! How many read requests a download sends to its store (`Store::reads` counts them): a
//! small object is one GET whole or ranged, a large one its first MiB and then the rest,
//! a range past the first frame a header GET and one GET of its frames; never a HEAD. The
//! gateway's tests check the same through real S3 clients on both backends.

use hyok::objects::{prefix_len, ByteRange, Source};
use hyok::store::{ReadCounter, StoreOptions, StoreUrl};
use hyok::{EncryptionContext, Settings};

mod common;
use std::sync::Arc;

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn downloads_send_the_fewest_read_requests() {
    let dir = tempfile::tempdir().unwrap();
    let session = common::raw_aes_session(dir.path(), "reads", 7);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let root = dir.path().join("store");
    std::fs::create_dir(&root).unwrap();
    let url = |k: &str| StoreUrl::parse(&format!("file://{}/{k}", root.display())).unwrap();
    let reads = Arc::new(ReadCounter::default());
    let store = session
        .open_store(&url("x"), StoreOptions::default())
        .unwrap()
        .counting_reads(reads.clone());
    let objects = session
        .objects(
            store,
            Settings::default(),
            session.transfer(None, None),
            rt.handle().clone(),
        )
        .unwrap();
    let small = data(4096);
    let large = data(3 * 1024 * 1024 + 123);
    for (k, d) in [("small", &small), ("large", &large)] {
        objects
            .put(&url(k), &mut &d[..], &Source::default())
            .unwrap();
    }
    let get = |k: &str, range: Option<ByteRange>| {
        let (g0, h0) = (reads.gets(), reads.heads());
        let mut out = Vec::new();
        objects
            .get(&url(k), &mut out, range, &EncryptionContext::new())
            .unwrap();
        (out, reads.gets() - g0, reads.heads() - h0)
    };
    let r = |start, end| Some(ByteRange { start, end });

    assert_eq!(get("small", None), (small.clone(), 1, 0));
    assert_eq!(
        get("small", r(100, Some(199))),
        (small[100..200].to_vec(), 1, 0)
    );
    assert_eq!(get("large", None), (large.clone(), 2, 0));
    let far = 2_500_000u64;
    assert!(prefix_len(true) < prefix_len(false));
    assert_eq!(
        get("large", r(far, Some(far + 99_999))),
        (large[2_500_000..2_600_000].to_vec(), 2, 0)
    );
    // A range inside the first frame is served from the first GET.
    assert_eq!(
        get("large", r(10, Some(20_000))),
        (large[10..20_001].to_vec(), 1, 0)
    );
}
