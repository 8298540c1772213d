//! A local folder listed in key order, from an offset, without reading what sorts before it.
//!
//! object_store's `LocalFileSystem` walks the whole folder in directory order and stats every
//! file after the offset, so a caller that wants one page in key order (the gateway's
//! ListObjects) had to read everything under the prefix for every page: a bucket of N objects
//! listed page by page cost about N² / 1,000 stats. Here each directory is read in rounds: a
//! round reads the directory's names (no stat) and keeps the smallest `cap` names after the
//! offset and after what earlier rounds returned, sorted; directories are entered in their
//! place in that order and files are stat'ed only when they are returned. A reader that stops
//! after a page costs one round per directory on its way and a stat per key returned.
//!
//! *Order.* Keys are compared as the strings object_store makes of them (the path's names
//! joined by `/`; object_store stores a name on disk as it is). A directory `d` is sorted by
//! `d/`: every key under it starts with that, and a file name has no `/`, so comparing a file
//! name or another `e/` with `d/` decides the order of every key under `d` the same way. The
//! walk therefore yields keys in byte order.
//!
//! *What is listed* is what object_store lists: regular files, also through symbolic links
//! (broken links are skipped, a directory loop is an error), not object_store's staging files
//! (`NAME#DIGITS`), nothing that vanished while it was read; its entity tags are computed the
//! same way (`"INODE-MTIME_MICROS-SIZE"` in hex), so a later read pinned to one matches. The
//! test `matches_object_store` compares both listings.
//!
//! *Memory:* per directory on the current path, one round's names: `cap` starts at 1,024 and
//! doubles per round of the same directory up to 65,536, so a listing of everything in a
//! directory of M names costs about M / 65,536 + 7 reads of it.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path as FsPath, PathBuf};
use std::time::SystemTime;

/// The first round's size per directory, and the largest.
const FIRST_ROUND: usize = 1024;
const MAX_ROUND: usize = 65_536;

/// A file the walk found: its key (object_store's location string) and what a listing shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) key: String,
    pub(crate) size: u64,
    pub(crate) last_modified: SystemTime,
    pub(crate) e_tag: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// The name, with `/` appended for a directory: the order of the keys under it.
    sort: String,
    dir: bool,
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.sort.as_bytes().cmp(other.sort.as_bytes())
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One directory on the walk's current path.
struct Level {
    dir: PathBuf,
    /// The key prefix of what is in it (`a/b/`).
    key: String,
    /// The current round's entries not yet taken, in order.
    batch: VecDeque<Entry>,
    /// The last entry taken (the next round starts after it).
    last: Option<String>,
    /// The last round held every remaining entry.
    done: bool,
    cap: usize,
    /// Device and inode, to refuse a directory loop through symbolic links.
    id: (u64, u64),
}

/// The walk: an iterator of files in key order whose key sorts after `offset`. A name no
/// key can hold (not UTF-8, a control character), a folder that cannot be read and a folder
/// loop are errors in the stream, and the walk goes on past them, as object_store's does.
pub(crate) struct Walk {
    stack: Vec<Level>,
    offset: Option<String>,
    first_cap: usize,
    errors: VecDeque<io::Error>,
}

impl Walk {
    /// List the folder `dir`, whose keys start with `key` (`a/b/`, or empty), after `offset`.
    /// A missing folder, or a file, lists nothing.
    pub(crate) fn new(dir: PathBuf, key: String, offset: Option<String>) -> Self {
        Self::with_first_round(dir, key, offset, FIRST_ROUND)
    }

    fn with_first_round(dir: PathBuf, key: String, offset: Option<String>, cap: usize) -> Self {
        let mut stack = Vec::new();
        if let Ok(m) = fs::metadata(&dir) {
            if m.is_dir() {
                stack.push(Level {
                    dir,
                    key,
                    batch: VecDeque::new(),
                    last: None,
                    done: false,
                    cap,
                    id: (m.dev(), m.ino()),
                });
            }
        }
        Self {
            stack,
            offset,
            first_cap: cap,
            errors: VecDeque::new(),
        }
    }

    /// Read one round of `level`'s directory: its smallest `cap` entries after `last` whose
    /// keys can sort after the offset. Names no key can hold are reported in `errors` (in
    /// the first round only, so each once); a directory that cannot be read is reported and
    /// left.
    fn round(level: &mut Level, offset: Option<&str>, errors: &mut VecDeque<io::Error>) {
        let first = level.last.is_none();
        level.done = true;
        let rd = match fs::read_dir(&level.dir) {
            Ok(rd) => rd,
            // Removed (or replaced by a file) since it was listed: nothing in it.
            Err(e) if gone(&e) => return,
            Err(e) => {
                errors.push_back(with_path(&level.dir, e));
                return;
            }
        };
        let mut heap: BinaryHeap<Entry> = BinaryHeap::with_capacity(level.cap + 1);
        let mut more = false;
        for de in rd {
            let de = match de {
                Ok(de) => de,
                Err(e) if gone(&e) => continue,
                Err(e) => {
                    errors.push_back(with_path(&level.dir, e));
                    return;
                }
            };
            let name = de.file_name();
            let name = match key_name(&name) {
                Ok(n) => n,
                Err(why) => {
                    if first {
                        errors.push_back(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("{}/{}: {why}", level.dir.display(), escaped(&name)),
                        ));
                    }
                    continue;
                }
            };
            let mut kind = match de.file_type() {
                Ok(t) => t,
                Err(e) if gone(&e) => continue,
                Err(e) => {
                    errors.push_back(with_path(&de.path(), e));
                    continue;
                }
            };
            if kind.is_symlink() {
                // Followed, as object_store does; a broken link is skipped.
                match fs::metadata(de.path()) {
                    Ok(m) => kind = m.file_type(),
                    Err(_) => continue,
                }
            }
            let dir = kind.is_dir();
            if !dir && !kind.is_file() {
                continue;
            }
            let sort = if dir {
                format!("{name}/")
            } else {
                name.to_owned()
            };
            if level.last.as_deref().is_some_and(|l| sort.as_str() <= l) {
                continue;
            }
            if let Some(o) = offset {
                let full = format!("{}{sort}", level.key);
                // A file at or before the offset, or a directory whose keys all are.
                let before = if dir {
                    full.as_str() <= o && !o.starts_with(&full)
                } else {
                    full.as_str() <= o
                };
                if before {
                    continue;
                }
            }
            heap.push(Entry { sort, dir });
            if heap.len() > level.cap {
                heap.pop();
                more = true;
            }
        }
        level.batch = heap.into_sorted_vec().into();
        level.done = !more;
        level.cap = (level.cap * 2).min(MAX_ROUND);
    }

    fn step(&mut self) -> io::Result<Option<Found>> {
        loop {
            if let Some(e) = self.errors.pop_front() {
                return Err(e);
            }
            let Some(level) = self.stack.last_mut() else {
                return Ok(None);
            };
            let Some(entry) = level.batch.pop_front() else {
                if level.done {
                    self.stack.pop();
                } else {
                    Self::round(level, self.offset.as_deref(), &mut self.errors);
                }
                continue;
            };
            level.last = Some(entry.sort.clone());
            let path = level.dir.join(entry.sort.trim_end_matches('/'));
            let key = format!("{}{}", level.key, entry.sort);
            let m = match fs::metadata(&path) {
                Ok(m) => m,
                Err(e) if gone(&e) => continue,
                Err(e) => return Err(with_path(&path, e)),
            };
            if entry.dir {
                if !m.is_dir() {
                    continue;
                }
                let id = (m.dev(), m.ino());
                if self.stack.iter().any(|l| l.id == id) {
                    return Err(io::Error::other(format!(
                        "{}: a directory loop (a symbolic link to a folder above it); not entered",
                        path.display()
                    )));
                }
                self.stack.push(Level {
                    dir: path,
                    key,
                    batch: VecDeque::new(),
                    last: None,
                    done: false,
                    cap: self.first_cap,
                    id,
                });
                continue;
            }
            if !m.is_file() || staging(&key) {
                continue;
            }
            return Ok(Some(Found {
                e_tag: e_tag(&m),
                size: m.len(),
                last_modified: m.modified().map_err(|e| with_path(&path, e))?,
                key,
            }));
        }
    }
}

impl Iterator for Walk {
    type Item = io::Result<Found>;

    fn next(&mut self) -> Option<Self::Item> {
        self.step().transpose()
    }
}

/// A directory entry's name as a key's name: UTF-8 without control characters (what
/// object_store's paths accept).
fn key_name(name: &std::ffi::OsStr) -> Result<&str, &'static str> {
    let Some(n) = name.to_str() else {
        return Err("the name is not UTF-8: no object key can hold it");
    };
    if n.chars().any(|c| c.is_ascii_control()) {
        return Err("the name holds a control character: no object key can hold it");
    }
    Ok(n)
}

/// A name for a message: bytes that are not UTF-8, control characters and `%` as `%XX`.
fn escaped(name: &std::ffi::OsStr) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for chunk in name.as_bytes().utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() || c == '%' {
                let mut b = [0; 4];
                for byte in c.encode_utf8(&mut b).bytes() {
                    out.push_str(&format!("%{byte:02X}"));
                }
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn with_path(path: &FsPath, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// object_store's staging files while it writes: `NAME#DIGITS` (not objects).
fn staging(key: &str) -> bool {
    let name = key.rsplit('/').next().unwrap_or(key);
    match name.split_once('#') {
        Some((_, suffix)) if !suffix.is_empty() => suffix.bytes().all(|b| b.is_ascii_digit()),
        _ => false,
    }
}

/// The entity tag object_store's `LocalFileSystem` gives the file (a read pinned to it must
/// match): inode, modification time in microseconds and size, in hex.
fn e_tag(m: &fs::Metadata) -> String {
    let mtime = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .unwrap_or_default()
        .as_micros();
    format!("\"{:x}-{mtime:x}-{:x}\"", m.ino(), m.len())
}

/// The folder of the store key `prefix` (object_store's local keys are paths below `/`).
pub(crate) fn folder_of(prefix: &str) -> PathBuf {
    FsPath::new("/").join(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use object_store::ObjectStore;

    fn touch(p: &FsPath, bytes: &[u8]) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, bytes).unwrap();
    }

    /// A tree whose names sort differently as names and as keys (`a-b` < `a/…` < `a.b`),
    /// with staging files, links and empty folders.
    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        for (i, k) in [
            "a/x",
            "a-b",
            "a.b",
            "a0",
            "b/a!",
            "b/a-b",
            "b/a.b",
            "b/a/x",
            "b/a/y/z",
            "b/c d",
            "b/%41",
            "b/x#y",
            "b/x#",
            "c/d/e/f/g",
            "c/d/e0",
            "c/d-e",
            "c/d0",
            "top",
        ]
        .iter()
        .enumerate()
        {
            touch(&d.join(k), &vec![b'x'; i + 1]);
        }
        touch(&d.join("b/x#12"), b"staging");
        fs::create_dir_all(d.join("empty/inner")).unwrap();
        std::os::unix::fs::symlink(d.join("a0"), d.join("b/link")).unwrap();
        std::os::unix::fs::symlink(d.join("missing"), d.join("b/broken")).unwrap();
        std::os::unix::fs::symlink(d.join("c/d"), d.join("b/dirlink")).unwrap();
        t
    }

    fn walk(dir: &FsPath, offset: Option<&str>, cap: usize) -> Vec<Found> {
        let key = format!("{}/", dir.display().to_string().trim_start_matches('/'));
        Walk::with_first_round(dir.to_owned(), key, offset.map(str::to_owned), cap)
            .collect::<io::Result<Vec<_>>>()
            .unwrap()
    }

    fn object_store_list(dir: &FsPath) -> Vec<Found> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let fs_store = object_store::local::LocalFileSystem::new();
        let prefix = object_store::path::Path::from_absolute_path(dir).unwrap();
        let mut v: Vec<Found> = rt.block_on(async {
            fs_store
                .list(Some(&prefix))
                .map(|r| {
                    let m = r.unwrap();
                    Found {
                        key: m.location.to_string(),
                        size: m.size,
                        last_modified: m.last_modified.into(),
                        e_tag: m.e_tag.unwrap(),
                    }
                })
                .collect()
                .await
        });
        v.sort_by(|a, b| a.key.as_bytes().cmp(b.key.as_bytes()));
        v
    }

    #[test]
    fn matches_object_store() {
        let t = tree();
        let want = object_store_list(t.path());
        assert!(want.len() > 15, "{want:?}");
        for cap in [1, 2, 3, 1024] {
            assert_eq!(walk(t.path(), None, cap), want, "cap {cap}");
        }
    }

    #[test]
    fn starts_after_any_offset() {
        let t = tree();
        let all = object_store_list(t.path());
        let base = format!(
            "{}/",
            t.path().display().to_string().trim_start_matches('/')
        );
        let mut offsets: Vec<String> = all.iter().map(|f| f.key.clone()).collect();
        for extra in [
            "",
            "a",
            "a/",
            "b/",
            "b/a/",
            "b/a/y",
            "c/d/e/",
            "c/d/e/f/g0",
            "zz",
            "b/x#",
        ] {
            offsets.push(format!("{base}{extra}"));
        }
        offsets.push(String::new());
        for o in &offsets {
            let want: Vec<Found> = all
                .iter()
                .filter(|f| f.key.as_str() > o.as_str())
                .cloned()
                .collect();
            for cap in [1, 2, 1024] {
                assert_eq!(
                    walk(t.path(), Some(o), cap),
                    want,
                    "offset {o:?}, cap {cap}"
                );
            }
        }
    }

    #[test]
    fn missing_or_file_lists_nothing_and_a_loop_is_an_error_not_entered() {
        let t = tree();
        assert!(walk(&t.path().join("nothing"), None, 4).is_empty());
        assert!(walk(&t.path().join("a0"), None, 4).is_empty());
        std::os::unix::fs::symlink(t.path().join("c"), t.path().join("c/d/up")).unwrap();
        let key = format!(
            "{}/",
            t.path().display().to_string().trim_start_matches('/')
        );
        let all: Vec<io::Result<Found>> = Walk::new(t.path().to_owned(), key, None).collect();
        let errors: Vec<String> = all
            .iter()
            .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
            .collect();
        // Reached twice: through `c/d/up` and through the link `b/dirlink` to `c/d`.
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors.iter().all(|e| e.contains("directory loop")),
            "{errors:?}"
        );
        assert!(
            all.iter().filter(|r| r.is_ok()).count() > 15,
            "the rest is listed"
        );
    }

    /// A name no key can hold is an error in the stream, once, escaped; the rest is listed,
    /// in every round.
    #[test]
    fn names_no_key_can_hold_are_errors_and_the_rest_is_listed() {
        use std::os::unix::ffi::OsStrExt;
        let t = tree();
        let want = object_store_list(t.path());
        let bad = t.path().join("b");
        fs::write(
            bad.join(std::ffi::OsStr::from_bytes(b"bad-\xff-name")),
            b"x",
        )
        .unwrap();
        fs::write(bad.join("esc-\u{1b}[31m"), b"x").unwrap();
        let key = format!(
            "{}/",
            t.path().display().to_string().trim_start_matches('/')
        );
        for cap in [1, 3, 1024] {
            let all: Vec<io::Result<Found>> =
                Walk::with_first_round(t.path().to_owned(), key.clone(), None, cap).collect();
            let mut errors: Vec<String> = all
                .iter()
                .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
                .collect();
            errors.sort();
            assert_eq!(errors.len(), 2, "cap {cap}: {errors:?}");
            assert!(
                errors[0]
                    .ends_with("/b/bad-%FF-name: the name is not UTF-8: no object key can hold it"),
                "{errors:?}"
            );
            assert!(
                errors[1].ends_with(
                    "/b/esc-%1B[31m: the name holds a control character: no object key can hold it"
                ),
                "{errors:?}"
            );
            let found: Vec<Found> = all.into_iter().filter_map(Result::ok).collect();
            assert_eq!(found, want, "cap {cap}");
        }
    }

    #[test]
    fn recognises_staging_files() {
        assert!(staging("a/b#1"));
        assert!(staging("b#123"));
        assert!(!staging("a/b#"));
        assert!(!staging("a/b#1x"));
        assert!(!staging("a#1/b"));
        assert!(!staging("plain"));
    }
}
