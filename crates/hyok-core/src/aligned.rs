//! Page-aligned buffers for the copy loops.

/// A zeroed buffer whose start is aligned to a page: the kernel's copy of a `read` into a
/// destination that is not (a large `Vec` starts 16 bytes past a page) costs more system
/// time on some CPUs.
pub(crate) struct AlignedBuf {
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    const ALIGN: usize = 4096;

    pub(crate) fn new(len: usize) -> Self {
        let buf = vec![0u8; len + Self::ALIGN];
        let start = buf.as_ptr().align_offset(Self::ALIGN).min(Self::ALIGN);
        Self { buf, start, len }
    }

    pub(crate) fn get(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.start + self.len]
    }
}
