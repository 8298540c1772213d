//! Input and output: stdin/stdout or files; file output goes to a temporary file beside
//! the target and is renamed only when the command succeeded, so a failed decrypt leaves
//! no file behind and an existing file is never clobbered without --force.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use tempfile::NamedTempFile;

use crate::pipe::WriteBehind;
use crate::Usage;

/// Input bigger than this shows a progress bar (when stderr is a terminal).
const PROGRESS_THRESHOLD: u64 = 64 * 1024 * 1024;

fn is_stdio(p: &Option<PathBuf>) -> bool {
    p.as_deref().is_none_or(|p| p == Path::new("-"))
}

/// An opened input with its size when known.
pub(crate) struct Input {
    pub(crate) reader: Box<dyn Read + Send>,
    pub(crate) len: Option<u64>,
    pub(crate) name: Option<String>,
}

pub(crate) fn open_input(path: &Option<PathBuf>, show_progress: bool) -> Result<Input> {
    let (reader, len, name): (Box<dyn Read + Send>, Option<u64>, Option<String>) = if is_stdio(path)
    {
        (Box::new(io::stdin()), None, None)
    } else {
        let p = path.as_ref().expect("checked by is_stdio");
        let f = File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
        let len = f.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
        (Box::new(f), len, Some(p.display().to_string()))
    };
    let reader = match len {
        Some(n) if show_progress && n >= PROGRESS_THRESHOLD && io::stderr().is_terminal() => {
            let pb = ProgressBar::new(n);
            pb.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            Box::new(pb.wrap_read(reader)) as Box<dyn Read + Send>
        }
        _ => reader,
    };
    Ok(Input { reader, len, name })
}

/// Where output goes until the command commits it. A writer thread does the writing
/// (`pipe::WriteBehind`), so it overlaps with the crypto.
pub(crate) enum Output {
    Stdout(WriteBehind<io::Stdout>),
    File {
        tmp: NamedTempFile,
        pipe: WriteBehind<File>,
        target: PathBuf,
        force: bool,
    },
}

impl Output {
    /// Open the output, refusing an existing file without `force`, input == output, and
    /// binary output to a terminal.
    pub(crate) fn open(
        path: &Option<PathBuf>,
        input: &Option<PathBuf>,
        force: bool,
        binary: bool,
    ) -> Result<Self> {
        if is_stdio(path) {
            let out = io::stdout();
            if binary && out.is_terminal() {
                return Err(Usage::err(
                    "refusing to write binary ciphertext to a terminal",
                    Some("use -o FILE or redirect stdout"),
                ));
            }
            return Ok(Self::Stdout(WriteBehind::new(out)?));
        }
        let target = path.clone().expect("checked by is_stdio");
        if !is_stdio(input) {
            let a = input.as_ref().expect("checked by is_stdio");
            if let (Ok(a), Ok(b)) = (a.canonicalize(), target.canonicalize()) {
                if a == b {
                    return Err(Usage::err("input and output are the same file", None));
                }
            }
        }
        // `symlink_metadata`: a dangling symbolic link exists too (`exists()` follows it).
        if let (Ok(meta), false) = (std::fs::symlink_metadata(&target), force) {
            let what = if meta.file_type().is_symlink() {
                " (a symbolic link)"
            } else {
                ""
            };
            return Err(Usage::err(
                format!("{} already exists{what}", target.display()),
                Some("pass --force to overwrite it"),
            ));
        }
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".hyok-")
            .suffix(".partial")
            .tempfile_in(&dir)
            .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
        let pipe = WriteBehind::new(tmp.as_file().try_clone()?)?;
        Ok(Self::File {
            tmp,
            pipe,
            target,
            force,
        })
    }

    pub(crate) fn writer(&mut self) -> &mut dyn Write {
        match self {
            Self::Stdout(s) => s,
            Self::File { pipe, .. } => pipe,
        }
    }

    /// Make the output visible: write out what is queued, then flush stdout, or rename the
    /// temporary file into place. `sync` fsyncs the file before the rename and its directory
    /// after; without it the file is still complete when it appears, only a power loss in
    /// the next seconds may lose it.
    pub(crate) fn commit(self, sync: bool) -> Result<()> {
        match self {
            Self::Stdout(s) => {
                s.finish().context("writing stdout")?;
            }
            Self::File {
                tmp,
                pipe,
                target,
                force,
            } => {
                // Every byte written (or the writer thread's error) before the rename.
                pipe.finish().context("writing the output")?;
                if sync {
                    tmp.as_file()
                        .sync_all()
                        .context("flushing output to disk")?;
                }
                let res = if force {
                    tmp.persist(&target).map(|_| ())
                } else {
                    tmp.persist_noclobber(&target).map(|_| ())
                };
                if let Err(e) = res {
                    bail!("cannot create {}: {}", target.display(), e.error);
                }
                if sync {
                    // The rename itself is durable once the directory is.
                    let dir = match target.parent() {
                        Some(p) if !p.as_os_str().is_empty() => p,
                        _ => Path::new("."),
                    };
                    #[cfg(unix)]
                    File::open(dir)
                        .and_then(|d| d.sync_all())
                        .with_context(|| format!("flushing directory {}", dir.display()))?;
                }
            }
        }
        Ok(())
    }
}

/// Create a new file that must not exist yet, with the given Unix mode.
pub(crate) fn create_new(path: &Path, mode: u32) -> Result<File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    opts.open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            Usage::err(
                format!("{} already exists", path.display()),
                Some("refusing to overwrite a key; choose another name"),
            )
        } else {
            anyhow::Error::new(e).context(format!("cannot create {}", path.display()))
        }
    })
}
