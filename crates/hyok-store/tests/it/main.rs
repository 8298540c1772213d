//! Integration tests of hyok-store: streaming upload and ranged download through a local
//! folder (always) and a real S3-compatible server (when `AWS_ENDPOINT_URL` and
//! `HYOK_TEST_S3_BUCKET` are set; a loud `SKIPPED:` otherwise, a failure with
//! `HYOK_REQUIRE_SERVICES=1`).

use std::io::{Read, Write};

use hyok_store::{Store, StoreOptions, StoreUrl, Transfer};

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn round_trip(store: &Store, base: &StoreUrl, rt: &tokio::runtime::Runtime) {
    // Small parts so a few MiB exercise the multipart path.
    let transfer = Transfer::new(5 * 1024 * 1024, 3);
    for len in [
        0usize,
        1,
        5 * 1024 * 1024 - 1,
        5 * 1024 * 1024,
        12 * 1024 * 1024 + 7,
    ] {
        let url = base.join(&format!("obj-{len}")).unwrap();
        let body = data(len);
        let (s, u, t, b) = (store.clone(), url.clone(), transfer.clone(), body.clone());
        let h = rt.handle().clone();
        std::thread::spawn(move || {
            let mut meta = std::collections::BTreeMap::new();
            meta.insert("hyok-test".to_owned(), "yes é".to_owned());
            let mut w = s.writer(&h, &u, meta, &t).unwrap();
            for c in b.chunks(777_777) {
                w.write_all(c).unwrap();
            }
            assert_eq!(w.finish().unwrap(), b.len() as u64);
        })
        .join()
        .unwrap();
        let info = rt.block_on(store.head(&url)).unwrap();
        assert_eq!(info.size, len as u64);
        if store.backend() == hyok_store::Backend::S3 {
            assert_eq!(info.metadata["hyok-test"], "yes %C3%A9");
        }
        let (s, u, t, h) = (
            store.clone(),
            url.clone(),
            transfer.clone(),
            rt.handle().clone(),
        );
        let (size, tag) = (info.size, info.e_tag.clone());
        let got = std::thread::spawn(move || {
            let mut out = Vec::new();
            s.reader(&h, &u, 0..size, tag, &t)
                .read_to_end(&mut out)
                .unwrap();
            out
        })
        .join()
        .unwrap();
        assert!(got == body, "len {len}: downloaded bytes differ");
        if len > 10 {
            let part = rt
                .block_on(store.get_range(&url, 3..9, info.e_tag.as_deref()))
                .unwrap();
            assert_eq!(&part[..], &body[3..9]);
        }
    }
    // A writer dropped or aborted without finish leaves no object behind.
    for abort in [false, true] {
        let url = base.join(&format!("abandoned-{abort}")).unwrap();
        let (s, u, t, h) = (
            store.clone(),
            url.clone(),
            transfer.clone(),
            rt.handle().clone(),
        );
        std::thread::spawn(move || {
            let mut w = s.writer(&h, &u, Default::default(), &t).unwrap();
            w.write_all(&data(11 * 1024 * 1024)).unwrap();
            if abort {
                assert!(w.abort().is_none());
            } else {
                drop(w);
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
        })
        .join()
        .unwrap();
        assert!(rt.block_on(store.try_head(&url)).unwrap().is_none());
    }
    let listed: Vec<_> = rt.block_on(async {
        use futures::TryStreamExt;
        store.list(base).try_collect::<Vec<_>>().await.unwrap()
    });
    assert_eq!(listed.len(), 5, "{listed:?}");
    // Listing after a key: exactly the keys that sort after it (in key order on S3), also
    // for an offset that is no valid key (it cannot be sent, so the store filters).
    let mut keys: Vec<String> = listed.iter().map(|i| i.url.key().to_owned()).collect();
    keys.sort();
    let after = |offset: &str| -> Vec<String> {
        rt.block_on(async {
            use futures::TryStreamExt;
            let got: Vec<_> = store.list_after(base, offset).try_collect().await.unwrap();
            got.into_iter().map(|i| i.url.key().to_owned()).collect()
        })
    };
    let mut got = after(&keys[1]);
    if base.local_path().is_none() {
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "S3 lists in key order: {got:?}"
        );
    }
    got.sort();
    assert_eq!(got, keys[2..]);
    let mut got = after(&format!("{}//", keys[1]));
    got.sort();
    assert_eq!(got, keys[2..]);
    assert!(after(&format!("{}\u{10FFFF}", keys[4])).is_empty());
    for i in listed {
        rt.block_on(store.delete(&i.url)).unwrap();
    }
}

#[test]
fn local_folder_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let base = StoreUrl::local(dir.path()).unwrap().as_folder();
    let store = Store::open(&base, &StoreOptions::default()).unwrap();
    round_trip(&store, &base, &rt);
}

#[test]
fn s3_round_trip() {
    let (Ok(_), Ok(bucket)) = (
        std::env::var("AWS_ENDPOINT_URL"),
        std::env::var("HYOK_TEST_S3_BUCKET"),
    ) else {
        if std::env::var("HYOK_REQUIRE_SERVICES").is_ok_and(|v| v == "1") {
            panic!("s3_round_trip: AWS_ENDPOINT_URL / HYOK_TEST_S3_BUCKET required");
        }
        eprintln!(
            "SKIPPED: hyok-store s3_round_trip: AWS_ENDPOINT_URL / HYOK_TEST_S3_BUCKET not set"
        );
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let base = StoreUrl::parse(&format!("s3://{bucket}/store-it-{nanos}/")).unwrap();
    let store = Store::open(&base, &StoreOptions::default()).unwrap();
    round_trip(&store, &base, &rt);
}
