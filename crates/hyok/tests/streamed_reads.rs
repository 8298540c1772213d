//! Downloads decrypted on the runtime (`Objects::plaintext_stream`) give what the blocking
//! path gives, for whole objects and ranges of many frames, and refuse what it refuses: a
//! changed frame (after the frames before it), a cut object, a range past the end. Objects
//! the stream cannot serve (signed suites, a header longer than the prefix) say so.

use futures::StreamExt;
use hyok::objects::{prefix_len, ByteRange, Objects, Source};
use hyok::store::{Prefix, StoreOptions, StoreUrl};
use hyok::{AlgorithmSuite, EncryptionContext, Settings};

mod common;

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 13 + i / 253) as u8).collect()
}

/// Frames of 1,000 bytes, so that small objects have many.
const FRAME: u32 = 1000;

struct Fixture {
    _dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    objects: Objects,
    root: std::path::PathBuf,
}

impl Fixture {
    fn new(suite: AlgorithmSuite) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let session = common::raw_aes_session(dir.path(), "streamed", 9);
        let rt = tokio::runtime::Runtime::new().unwrap();
        let root = dir.path().join("store");
        std::fs::create_dir(&root).unwrap();
        let mut settings = Settings {
            suite,
            ..Settings::default()
        };
        settings.encrypt.frame_length = FRAME;
        let store = session
            .open_store(&url_in(&root, "x"), StoreOptions::default())
            .unwrap();
        // Parts of 64 KiB: a long range is several parallel GETs.
        let transfer = session.transfer(None, None).with_part_size(64 << 10);
        let objects = session
            .objects(store, settings, transfer, rt.handle().clone())
            .unwrap();
        Self {
            _dir: dir,
            rt,
            objects,
            root,
        }
    }

    fn url(&self, k: &str) -> StoreUrl {
        url_in(&self.root, k)
    }

    fn put(&self, k: &str, d: &[u8]) {
        self.objects
            .put(&self.url(k), &mut &d[..], &Source::default())
            .unwrap();
    }

    fn prefix(&self, k: &str, ranged: bool) -> Prefix {
        let store = self.objects.catalog().store().clone();
        self.rt
            .block_on(store.get_prefix(&self.url(k), prefix_len(ranged)))
            .unwrap()
    }

    /// What the stream gives before it ends or fails, and how it ended.
    fn stream(&self, k: &str, range: Option<ByteRange>) -> (Vec<u8>, hyok::Result<()>) {
        let prefix = self.prefix(k, range.is_some());
        assert!(self.objects.streams(&prefix), "{k}: not streamable");
        self.rt.block_on(async {
            let mut s = match self
                .objects
                .plaintext_stream(&self.url(k), prefix, range, &EncryptionContext::new())
                .await
            {
                Ok(s) => s,
                Err(e) => return (Vec::new(), Err(e)),
            };
            let mut out = Vec::new();
            while let Some(piece) = s.next().await {
                match piece {
                    Ok(b) => {
                        assert!(!b.is_empty(), "an empty piece");
                        out.extend_from_slice(&b);
                    }
                    Err(e) => {
                        assert!(s.next().await.is_none(), "something after the error");
                        return (out, Err(e));
                    }
                }
            }
            (out, Ok(()))
        })
    }

    fn blocking(&self, k: &str, range: Option<ByteRange>) -> hyok::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.objects
            .get(&self.url(k), &mut out, range, &EncryptionContext::new())
            .map(|_| out)
    }
}

fn url_in(root: &std::path::Path, k: &str) -> StoreUrl {
    StoreUrl::parse(&format!("file://{}/{k}", root.display())).unwrap()
}

fn r(start: u64, end: Option<u64>) -> Option<ByteRange> {
    Some(ByteRange { start, end })
}

#[test]
fn streamed_downloads_equal_the_blocking_ones() {
    let f = Fixture::new(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey);
    for n in [0usize, 1, 999, 1000, 1001, 5_000, 300_000 + 17] {
        let d = data(n);
        let k = format!("o{n}");
        f.put(&k, &d);
        let (out, end) = f.stream(&k, None);
        end.unwrap();
        assert_eq!(out, d, "{k} whole");
        if n == 0 {
            continue;
        }
        let last = n as u64 - 1;
        let mut ranges = vec![
            (0, Some(0)),
            (0, None),
            (last, None),
            (0, Some(last + 10)),
            (n as u64 / 2, Some(n as u64 / 2 + 1)),
        ];
        if n > 2002 {
            ranges.extend([(999, Some(1000)), (1000, Some(1999)), (1001, Some(2001))]);
        }
        if n > 200_000 {
            // Several parts of the transfer: parallel GETs.
            ranges.extend([(500, Some(199_999)), (70_000, None)]);
        }
        for (a, b) in ranges {
            let end = b.map_or(last, |b| b.min(last)) as usize;
            let (out, res) = f.stream(&k, r(a, b));
            res.unwrap();
            assert!(out == d[a as usize..=end], "{k} {a}..={b:?}");
            assert_eq!(f.blocking(&k, r(a, b)).unwrap(), out, "{k} {a}..={b:?}");
        }
        // A range that starts past the end is refused as the blocking path refuses it.
        let (out, res) = f.stream(&k, r(n as u64, None));
        assert!(out.is_empty());
        assert!(matches!(res, Err(hyok::Error::Range(_))), "{k}: {res:?}");
    }
}

#[test]
fn changed_or_cut_objects_fail_after_the_frames_that_verified() {
    let f = Fixture::new(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey);
    let d = data(50_000);
    f.put("t", &d);
    let path = f.root.join("t");
    let good = std::fs::read(&path).unwrap();
    // Flip a byte in the 20th frame's ciphertext (frames: sequence number, IV, 1,000
    // bytes, tag).
    let h = hyok::ParsedHeader::read(&mut &good[..], hyok::HeaderLimits::default())
        .unwrap()
        .wire_len();
    let mut bad = good.clone();
    bad[h + 19 * (4 + 12 + 1000 + 16) + 16 + 500] ^= 1;
    std::fs::write(&path, &bad).unwrap();
    let (out, res) = f.stream("t", None);
    assert!(
        matches!(
            res,
            Err(hyok::Error::Format(hyok::FormatError::FrameAuth(20)))
        ),
        "{res:?}"
    );
    assert!(out == d[..19_000], "not exactly the 19 frames before it");
    let (out, res) = f.stream("t", r(100, Some(40_000)));
    assert!(res.is_err());
    assert!(out == d[100..19_000]);
    // Cut short: the missing final frame is an error, never a short success.
    std::fs::write(&path, &good[..good.len() - 1]).unwrap();
    let (out, res) = f.stream("t", None);
    assert!(res.is_err(), "a cut object went unnoticed");
    assert!(d.starts_with(&out));
}

#[test]
fn signed_messages_and_long_headers_are_left_to_the_blocking_path() {
    let f = Fixture::new(AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384);
    f.put("signed", b"signed data");
    assert!(!f.objects.streams(&f.prefix("signed", false)));
    let u = Fixture::new(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey);
    u.put("plain", &data(10_000));
    let mut p = u.prefix("plain", false);
    assert!(u.objects.streams(&p));
    // A prefix that ends inside the header.
    p.bytes = p.bytes.slice(..40);
    assert!(!u.objects.streams(&p));
}
