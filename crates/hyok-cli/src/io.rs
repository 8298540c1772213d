//! Input and output: stdin/stdout or files. A regular output file goes to a temporary file
//! beside the target (`tempout`) that gets its name only when the command succeeded, so a
//! failed or interrupted run leaves no file behind and an existing file is never clobbered
//! without --force. stdout and existing special files (FIFOs, devices) are written in place
//! (`stream`), never replaced.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use crate::pipe::WriteBehind;
use crate::stream::{Gate, Release, Sink, Stream};
use crate::tempout::TempOut;
use crate::Usage;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

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

/// What an output will hold: ciphertext (never to a terminal, never held back) or
/// plaintext (held back for signed messages on streamed outputs, see [`crate::stream`]).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Content {
    Ciphertext,
    Plaintext(Release),
}

/// Where output goes until the command commits it. A writer thread does the writing
/// (`pipe::WriteBehind`), so it overlaps with the crypto.
pub(crate) enum Output {
    /// stdout, or an existing file that is not a regular file (FIFO, character or block
    /// device, socket, `/proc/self/fd/N`): written in place, never replaced.
    Stream(Stream),
    /// A regular file: written to a temporary file beside it (unnamed where possible) that
    /// gets the target's name only on commit.
    File {
        tmp: TempOut,
        pipe: WriteBehind<File>,
        target: PathBuf,
        force: bool,
    },
}

impl Output {
    /// Open the output, refusing an existing regular file without `force`, input ==
    /// output, and ciphertext to a terminal.
    pub(crate) fn open(
        path: &Option<PathBuf>,
        input: &Option<PathBuf>,
        force: bool,
        content: Content,
    ) -> Result<Self> {
        // From here on, SIGINT/SIGTERM/SIGHUP remove temporary files and exit 128+signal.
        crate::signals::install();
        let release = match content {
            Content::Ciphertext => None,
            Content::Plaintext(r) => Some(r),
        };
        if is_stdio(path) {
            let out = io::stdout();
            if release.is_none() && out.is_terminal() {
                return Err(Usage::err(
                    "refusing to write binary ciphertext to a terminal",
                    Some("use -o FILE or redirect stdout"),
                ));
            }
            return Ok(Self::Stream(Stream::new(Sink::Stdout(out), release)));
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
        // A dangling symbolic link exists too (`metadata` follows it and finds nothing).
        let dangling = std::fs::symlink_metadata(&target).is_ok_and(|m| m.file_type().is_symlink())
            && std::fs::metadata(&target).is_err();
        if dangling && !force {
            return Err(Usage::err(
                format!("{} already exists (a symbolic link)", target.display()),
                Some("pass --force to overwrite it"),
            ));
        }
        match std::fs::metadata(&target) {
            Ok(m) if m.is_dir() => {
                return Err(Usage::err(
                    format!("{} is a directory", target.display()),
                    None,
                ));
            }
            Ok(m) if !m.is_file() => {
                // A FIFO, device or socket: write into it, never replace the node.
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&target)
                    .with_context(|| format!("cannot open {}", target.display()))?;
                return Ok(Self::Stream(Stream::new(Sink::Special(f), release)));
            }
            Ok(_) if !force => {
                return Err(Usage::err(
                    format!("{} already exists", target.display()),
                    Some("pass --force to overwrite it"),
                ));
            }
            _ => {}
        }
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = TempOut::new_in(&dir)
            .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
        let pipe = WriteBehind::new(tmp.file().try_clone()?)?;
        Ok(Self::File {
            tmp,
            pipe,
            target,
            force,
        })
    }

    pub(crate) fn writer(&mut self) -> &mut dyn Write {
        match self {
            Self::Stream(s) => s,
            Self::File { pipe, .. } => pipe,
        }
    }

    /// For a regular file: the temporary file itself, to be written directly instead of
    /// through [`Self::writer`] (a decryptor that writes from its own buffers, saving the
    /// copy into the writer thread's chunks). What goes through it is committed like the
    /// rest.
    pub(crate) fn file(&self) -> Option<io::Result<File>> {
        match self {
            Self::Stream(_) => None,
            Self::File { tmp, .. } => Some(tmp.file().try_clone()),
        }
    }

    /// Tell the output whether the message is signed (before the first byte). Only
    /// streamed outputs care: a file appears only after the whole message verified anyway.
    pub(crate) fn gate(&self) -> Option<Gate> {
        match self {
            Self::Stream(s) => Some(s.gate()),
            Self::File { .. } => None,
        }
    }

    /// The error to report instead of `e` when a streamed output refused to hold more of a
    /// signed message.
    pub(crate) fn explain(&self, e: anyhow::Error) -> anyhow::Error {
        match self {
            Self::Stream(s) if s.overflowed() => Usage::err(
                "the signed message is larger than --spool-limit: its plaintext cannot be held back until the signature verifies",
                Some("decrypt to a file with -o FILE, raise --spool-limit, or pass --unverified-stream to release plaintext before the signature is checked"),
            ),
            _ => e,
        }
    }

    /// Make the output visible: write out what is queued (streamed outputs: copy out what
    /// was held back), or give the temporary file its name. `sync` fsyncs the file before
    /// and its directory after; without it the file is still complete when it appears,
    /// only a power loss in the next seconds may lose it.
    pub(crate) fn commit(self, sync: bool) -> Result<()> {
        match self {
            Self::Stream(s) => {
                s.finish().context("writing the output")?;
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
                    tmp.file().sync_all().context("flushing output to disk")?;
                }
                if let Err(e) = tmp.persist(&target, force) {
                    if e.kind() == io::ErrorKind::AlreadyExists {
                        return Err(Usage::err(
                            format!("{} already exists", target.display()),
                            Some("pass --force to overwrite it"),
                        ));
                    }
                    bail!("cannot create {}: {e}", target.display());
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
