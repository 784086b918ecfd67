//! BLAKE3 verified streaming for `/cix/transfer/2` (ISO 37156 7.2 integrity, 7.3.2
//! authenticity), on top of the `bao-tree` crate.
//!
//! The content id is the plain BLAKE3 of the file (`b3sum`); the tree `bao-tree` builds over
//! it has that same root whatever the chunk group size, so a receiver checks each chunk group
//! of [`limits::TRANSFER_CHUNK_GROUP_BYTES`] against the content id from a signed entry as it
//! arrives. A sender keeps an *outboard* beside each file it serves: the tree's parent hashes
//! in post order (64 bytes per chunk group), in `blobs/<content>.obao`, built once and rebuilt
//! when missing.
//!
//! This module holds the tree geometry, the outboard files and the adapters between
//! `bao-tree`'s async traits and libp2p streams and files.

use std::io::{BufReader, BufWriter, Write as _};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bao_tree::{BaoTree, BlockSize, ChunkNum, ChunkRanges};
use bytes::Bytes;
use cix_protocol::content::ContentHash;
use cix_protocol::limits;
use futures::{AsyncReadExt, AsyncWriteExt};
use iroh_io::{AsyncSliceReader, AsyncStreamReader, AsyncStreamWriter};

/// log2 of the chunk group in 1 KiB BLAKE3 chunks: 16 chunks, 16 KiB.
pub const CHUNK_GROUP_LOG: u8 = 4;
const _: () = assert!(1024u64 << CHUNK_GROUP_LOG == limits::TRANSFER_CHUNK_GROUP_BYTES);

/// How much a sender gathers before writing to the stream (a leaf is only 16 KiB).
const SEND_BUFFER: usize = 256 * 1024;

/// The chunk group size as `bao-tree` wants it.
pub fn block_size() -> BlockSize {
    BlockSize::from_chunk_log(CHUNK_GROUP_LOG)
}

/// The tree over a content of `size` bytes.
pub fn tree(size: u64) -> BaoTree {
    BaoTree::new(size, block_size())
}

/// Byte ranges (chunk-group aligned, or ending at the end) as the chunk ranges `bao-tree`
/// encodes and decodes.
pub fn chunk_ranges(ranges: &[(u64, u64)]) -> ChunkRanges {
    let mut set = ChunkRanges::empty();
    for &(start, end) in ranges {
        set |= ChunkRanges::from(ChunkNum::full_chunks(start)..ChunkNum::chunks(end));
    }
    set
}

/// The content id as the hash type `bao-tree` uses.
pub fn root(content: &ContentHash) -> bao_tree::blake3::Hash {
    bao_tree::blake3::Hash::from(content.0)
}

/// Where the outboard of `content` lives in a blob directory.
pub fn outboard_path(blobs: &Path, content: &ContentHash) -> PathBuf {
    blobs.join(format!("{}.obao", content.to_hex()))
}

/// Makes sure `blobs/<content>.obao` holds the outboard of `data` (a file of `size` bytes
/// whose BLAKE3 must be `content`), building it when missing or of the wrong length. Blocking:
/// call it off the async threads. Returns the outboard's path.
///
/// # Errors
///
/// If `data` cannot be read, is not `size` bytes, or does not hash to `content` (the held
/// copy is corrupt: nothing is written), or the outboard cannot be written.
pub fn ensure_outboard(
    blobs: &Path,
    content: &ContentHash,
    data: &Path,
    size: u64,
) -> Result<PathBuf> {
    let path = outboard_path(blobs, content);
    let want = tree(size).outboard_size();
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == want) {
        return Ok(path);
    }
    build_outboard(blobs, content, data, size)
}

/// Builds `blobs/<content>.obao` from `data`, whatever is there already, and requires the
/// root to be `content`: the whole-file check of a received copy, too. Blocking.
///
/// # Errors
///
/// As [`ensure_outboard`].
pub fn build_outboard(
    blobs: &Path,
    content: &ContentHash,
    data: &Path,
    size: u64,
) -> Result<PathBuf> {
    let path = outboard_path(blobs, content);
    let want = tree(size).outboard_size();
    let file = std::fs::File::open(data)
        .with_context(|| format!("cannot open {} to build its outboard", data.display()))?;
    let len = file.metadata()?.len();
    if len != size {
        return Err(NotTheContent(format!(
            "{} is {len} bytes, but the content {content} has {size}",
            data.display()
        ))
        .into());
    }
    std::fs::create_dir_all(blobs)?;
    let tmp = tempfile::Builder::new()
        .prefix(".obao.")
        .tempfile_in(blobs)
        .context("cannot create a temporary outboard")?;
    let mut out = BufWriter::new(tmp.reopen()?);
    let hash = bao_tree::io::sync::outboard_post_order(BufReader::new(file), tree(size), &mut out)
        .with_context(|| format!("cannot hash {}", data.display()))?;
    if hash.as_bytes() != &content.0 {
        return Err(NotTheContent(format!(
            "{} does not hash to its content id {content} (BLAKE3 {}): the held copy is corrupt",
            data.display(),
            hash.to_hex()
        ))
        .into());
    }
    out.flush()?;
    out.get_ref().sync_all()?;
    drop(out);
    tmp.persist(&path)
        .with_context(|| format!("cannot store the outboard {}", path.display()))?;
    tracing::debug!(%content, bytes = want, "outboard built");
    Ok(path)
}

/// A file that is not the content it should be (its size or its BLAKE3 differs), as
/// [`build_outboard`] finds; any other error of it is a failure to read or write, which says
/// nothing about the file's bytes.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotTheContent(pub String);

/// Whether `e` says the file is not the content (rather than that it could not be read, or the
/// outboard not written).
pub fn is_not_the_content(e: &anyhow::Error) -> bool {
    e.downcast_ref::<NotTheContent>().is_some()
}

/// A file read at offsets, for `bao-tree`. Reads are small (one chunk group) and usually from
/// the page cache, so they run in place rather than on the blocking pool.
#[derive(Debug, Clone)]
pub struct FileAt(pub Arc<std::fs::File>);

fn read_full_at(file: &std::fs::File, offset: u64, len: usize) -> std::io::Result<Bytes> {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        let n = file.read_at(&mut buf[got..], offset + got as u64)?;
        if n == 0 {
            break;
        }
        got += n;
    }
    buf.truncate(got);
    Ok(Bytes::from(buf))
}

impl AsyncSliceReader for FileAt {
    async fn read_at(&mut self, offset: u64, len: usize) -> std::io::Result<Bytes> {
        read_full_at(&self.0, offset, len)
    }

    async fn size(&mut self) -> std::io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
}

/// How much a sender reads of a served file at once: `bao-tree` asks for one 16 KiB chunk
/// group at a time, which was one `pread` and one zeroed allocation per group.
pub const SERVE_READ_BLOCK: usize = 256 * 1024;
/// How much a sender reads of an outboard at once. The parents of one segment lie together
/// in the post-order outboard (255 parents of 64 bytes for a 4 MiB segment), so one block
/// holds nearly all of them instead of one 64-byte `pread` each.
pub const OUTBOARD_READ_BLOCK: usize = 64 * 1024;

/// A file read at offsets through a cache of two blocks of `block` bytes, handing out slices
/// of them without copying. For the sender, whose reads come in order (the data) or move
/// around a small region (the outboard's parents of one segment).
#[derive(Debug, Clone)]
pub struct BlockAt {
    file: Arc<std::fs::File>,
    block: usize,
    cache: [Option<(u64, Bytes)>; 2],
    /// Which cache entry to replace next.
    next: usize,
}

impl BlockAt {
    /// Reads `file` in blocks of `block` bytes.
    pub fn new(file: Arc<std::fs::File>, block: usize) -> Self {
        Self {
            file,
            block: block.max(1),
            cache: [None, None],
            next: 0,
        }
    }
}

impl AsyncSliceReader for BlockAt {
    async fn read_at(&mut self, offset: u64, len: usize) -> std::io::Result<Bytes> {
        for (at, bytes) in self.cache.iter().flatten() {
            let end = at + bytes.len() as u64;
            // A block shorter than `block` ends at the end of the file: a read past it gets
            // what there is, as it would from the file.
            if offset >= *at && (offset + len as u64 <= end || bytes.len() < self.block) {
                let from = ((offset - at) as usize).min(bytes.len());
                let to = (from + len).min(bytes.len());
                return Ok(bytes.slice(from..to));
            }
        }
        if len > self.block {
            return read_full_at(&self.file, offset, len);
        }
        let aligned = offset - offset % self.block as u64;
        // A read that straddles two blocks starts its own block where it starts.
        let start = if offset + len as u64 > aligned + self.block as u64 {
            offset
        } else {
            aligned
        };
        let bytes = read_full_at(&self.file, start, self.block)?;
        let from = ((offset - start) as usize).min(bytes.len());
        let to = (from + len).min(bytes.len());
        let out = bytes.slice(from..to);
        self.cache[self.next] = Some((start, bytes));
        self.next = 1 - self.next;
        Ok(out)
    }

    async fn size(&mut self) -> std::io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
}

fn timed_out(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, format!("{what} stalled"))
}

/// How much a receiver reads from the stream at once. The decoder asks for 64-byte parents
/// and 16 KiB chunk groups; reading each from the muxer on its own cost two stream polls and
/// two timers per group.
pub const RECEIVE_BUFFER: usize = 256 * 1024;

/// The receiving side of a transfer stream, for `bao-tree`'s decoder; every read must make
/// progress within `idle`. Reads the stream in pieces of up to [`RECEIVE_BUFFER`] and hands
/// the decoder what it asks for from there. Counts the bytes read (content and hashes).
#[derive(Debug)]
pub struct StreamIn<'a> {
    stream: &'a mut libp2p::Stream,
    idle: Duration,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// Bytes read from the stream so far.
    pub read: u64,
}

impl<'a> StreamIn<'a> {
    /// Wraps `stream`.
    pub fn new(stream: &'a mut libp2p::Stream, idle: Duration) -> Self {
        Self {
            stream,
            idle,
            buf: vec![0u8; RECEIVE_BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            read: 0,
        }
    }

    /// Makes `want` bytes (at most the buffer) ready unless the stream ends first; returns
    /// how many are ready, at most `want`.
    async fn ready(&mut self, want: usize) -> std::io::Result<usize> {
        let want = want.min(self.buf.len());
        if self.end - self.start >= want {
            return Ok(want);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while self.end < want {
            let n = tokio::time::timeout(self.idle, self.stream.read(&mut self.buf[self.end..]))
                .await
                .map_err(|_| timed_out("the sender"))??;
            if n == 0 {
                break;
            }
            self.end += n;
            self.read += n as u64;
        }
        Ok(self.end.min(want))
    }
}

impl AsyncStreamReader for StreamIn<'_> {
    async fn read_bytes(&mut self, len: usize) -> std::io::Result<Bytes> {
        // The decoder asks for at most one chunk group at a time.
        let len = len.min(limits::TRANSFER_CHUNK_GROUP_BYTES as usize);
        let n = self.ready(len).await?;
        let out = Bytes::copy_from_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        Ok(out)
    }

    async fn read<const L: usize>(&mut self) -> std::io::Result<[u8; L]> {
        if self.ready(L).await? < L {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let mut out = [0u8; L];
        out.copy_from_slice(&self.buf[self.start..self.start + L]);
        self.start += L;
        Ok(out)
    }
}

/// The sending side of a transfer stream, for `bao-tree`'s encoder: gathers the small pieces
/// it writes (64-byte parents, 16 KiB leaves) into larger writes, optionally paced to a rate.
#[derive(Debug)]
pub struct StreamOut<'a> {
    stream: &'a mut libp2p::Stream,
    idle: Duration,
    buf: Vec<u8>,
    pace: Option<Pace>,
    /// Bytes written to the stream so far.
    pub written: u64,
}

#[derive(Debug)]
struct Pace {
    bytes_per_sec: u64,
}

/// The serving pace is the process's, not each stream's: every paced stream draws on one
/// budget, so several segments in flight do not multiply it.
static PACED: std::sync::Mutex<Option<(tokio::time::Instant, u64)>> = std::sync::Mutex::new(None);

impl Pace {
    /// When `len` more bytes may go out.
    fn due(&self, len: usize) -> tokio::time::Instant {
        let now = tokio::time::Instant::now();
        let mut paced = PACED.lock().unwrap_or_else(|p| p.into_inner());
        let (start, sent) = paced.get_or_insert((now, 0));
        let at = |start: tokio::time::Instant, sent: u64| {
            start + Duration::from_secs_f64(sent as f64 / self.bytes_per_sec as f64)
        };
        // After a pause the budget starts afresh rather than allowing a burst.
        if at(*start, *sent) + Duration::from_secs(1) < now {
            *start = now;
            *sent = 0;
        }
        let due = at(*start, *sent);
        *sent += len as u64;
        due
    }
}

impl<'a> StreamOut<'a> {
    /// Wraps `stream`; `rate`, when set, caps the bytes per second this process writes on
    /// all its paced streams together.
    pub fn new(stream: &'a mut libp2p::Stream, idle: Duration, rate: Option<u64>) -> Self {
        Self {
            stream,
            idle,
            buf: Vec::with_capacity(SEND_BUFFER),
            pace: rate
                .filter(|r| *r > 0)
                .map(|bytes_per_sec| Pace { bytes_per_sec }),
            written: 0,
        }
    }

    async fn drain(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if let Some(p) = &self.pace {
            tokio::time::sleep_until(p.due(self.buf.len())).await;
        }
        tokio::time::timeout(self.idle, self.stream.write_all(&self.buf))
            .await
            .map_err(|_| timed_out("the receiver"))??;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Writes what is gathered and flushes the stream.
    ///
    /// # Errors
    ///
    /// The stream failed or stalled.
    pub async fn finish(&mut self) -> std::io::Result<()> {
        self.drain().await?;
        tokio::time::timeout(self.idle, self.stream.flush())
            .await
            .map_err(|_| timed_out("the receiver"))?
    }
}

impl AsyncStreamWriter for StreamOut<'_> {
    async fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.buf.extend_from_slice(data);
        // Paced: write every chunk group so the pace is smooth.
        let limit = if self.pace.is_some() {
            limits::TRANSFER_CHUNK_GROUP_BYTES as usize
        } else {
            SEND_BUFFER
        };
        if self.buf.len() >= limit {
            self.drain().await?;
        }
        Ok(())
    }

    async fn write_bytes(&mut self, data: Bytes) -> std::io::Result<()> {
        self.write(&data).await
    }

    async fn sync(&mut self) -> std::io::Result<()> {
        self.finish().await
    }
}

/// The post-order outboard file of a content, for the encoder.
///
/// # Errors
///
/// If the file cannot be opened.
pub fn open_outboard(
    path: &Path,
    content: &ContentHash,
    size: u64,
) -> Result<bao_tree::io::outboard::PostOrderOutboard<BlockAt>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open the outboard {}", path.display()))?;
    Ok(bao_tree::io::outboard::PostOrderOutboard {
        root: root(content),
        tree: tree(size),
        data: BlockAt::new(Arc::new(file), OUTBOARD_READ_BLOCK),
    })
}

/// Alignment a direct write needs for its memory, its file offset and its length: the page
/// size, a multiple of the logical block size of the devices in use.
pub const DIRECT_ALIGN: usize = 4096;

/// Opens `path` (which exists) a second time for writing with `O_DIRECT`, so that received
/// data goes from our buffer to the device without a copy into the page cache. Writing a fresh
/// file through the page cache costs a copy per byte and an allocation per page, and on the
/// virtual machines we measured on it was the slowest step of a transfer by far (MEASUREMENTS;
/// transfer.md §7). `None` where the file system refuses direct I/O (for example tmpfs on
/// older kernels): the caller writes through the page cache instead.
pub fn open_direct(path: &Path) -> Option<std::fs::File> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{Mode, OFlags};
        let flags = OFlags::WRONLY | OFlags::DIRECT | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        match rustix::fs::open(path, flags, Mode::empty()) {
            Ok(fd) => Some(std::fs::File::from(fd)),
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e,
                    "direct I/O not available; writing through the page cache");
                None
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = path;
        None
    }
}

/// A write buffer whose contents start on a [`DIRECT_ALIGN`] boundary in memory, so that it
/// can be written to a file opened with [`open_direct`]. Allocated once per lane and reused.
#[derive(Debug, Default)]
pub struct AlignedBuf {
    raw: Vec<u8>,
    /// Where the aligned region starts in `raw` (0 when alignment could not be had: the buffer
    /// then still works, only never for direct writes).
    off: usize,
    len: usize,
}

impl AlignedBuf {
    /// A buffer for up to `capacity` bytes (it grows when more are added).
    pub fn with_capacity(capacity: usize) -> Self {
        let raw = vec![0u8; capacity + DIRECT_ALIGN];
        let off = raw.as_ptr().align_offset(DIRECT_ALIGN);
        let off = if off < DIRECT_ALIGN { off } else { 0 };
        Self { raw, off, len: 0 }
    }

    /// The bytes held.
    pub fn as_slice(&self) -> &[u8] {
        &self.raw[self.off..self.off + self.len]
    }

    /// How many bytes it holds without growing.
    pub fn capacity(&self) -> usize {
        self.raw.len().saturating_sub(self.off)
    }

    /// How many bytes are held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Empties the buffer, keeping its memory.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Appends `data`, moving to a larger aligned allocation when it does not fit.
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        let need = self.off + self.len + data.len();
        if need > self.raw.len() {
            let mut bigger = Self::with_capacity((self.len + data.len()).max(2 * self.len));
            bigger.raw[bigger.off..bigger.off + self.len].copy_from_slice(self.as_slice());
            bigger.len = self.len;
            *self = bigger;
        }
        let at = self.off + self.len;
        self.raw[at..at + data.len()].copy_from_slice(data);
        self.len += data.len();
    }
}

/// Writes all of `data` at `at` in `file`: the longest part that starts and ends on
/// [`DIRECT_ALIGN`] boundaries (in the file and in memory) through `direct` when there is one,
/// the rest through `file`. Returns `false` when the direct write was refused (`EINVAL`: the
/// file system or device wants another alignment) and everything went through `file` instead,
/// so the caller can stop trying. Blocking.
///
/// # Errors
///
/// The write failed (a full disk, an I/O error).
pub fn write_all_at(
    file: &std::fs::File,
    direct: Option<&std::fs::File>,
    data: &[u8],
    at: u64,
) -> std::io::Result<bool> {
    let align = DIRECT_ALIGN as u64;
    let aligned_start = at.is_multiple_of(align)
        && data.as_ptr().align_offset(DIRECT_ALIGN) == 0
        && direct.is_some();
    let direct_len = if aligned_start {
        data.len() - data.len() % DIRECT_ALIGN
    } else {
        0
    };
    if let (Some(d), true) = (direct, direct_len > 0) {
        match d.write_all_at(&data[..direct_len], at) {
            Ok(()) => {
                file.write_all_at(&data[direct_len..], at + direct_len as u64)?;
                return Ok(true);
            }
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                tracing::debug!(error = %e, "direct write refused; writing through the page cache");
                file.write_all_at(data, at)?;
                return Ok(false);
            }
            Err(e) => return Err(e),
        }
    }
    file.write_all_at(data, at)?;
    Ok(true)
}

/// The verified parent hashes one request brought, kept to be written into the outboard the
/// receiver assembles (transfer.md §7): every parent of the tree reaches the receiver in the
/// response for some segment, so once every segment is in, the outboard is whole without the
/// file being read again.
#[derive(Debug)]
pub struct Parents {
    tree: BaoTree,
    /// (offset in the post-order outboard, the pair of hashes).
    items: Vec<(u64, [u8; 64])>,
}

impl Parents {
    /// For a content of `size` bytes.
    pub fn new(size: u64) -> Self {
        Self {
            tree: tree(size),
            items: Vec::new(),
        }
    }

    /// Keeps a parent the decoder verified.
    pub fn add(&mut self, parent: &bao_tree::io::Parent) {
        let Some(offset) = self.tree.post_order_offset(parent.node) else {
            return;
        };
        let mut pair = [0u8; 64];
        pair[..32].copy_from_slice(parent.pair.0.as_bytes());
        pair[32..].copy_from_slice(parent.pair.1.as_bytes());
        self.items.push((offset.value() * 64, pair));
    }

    /// Writes what was kept into the outboard file `to`, runs of neighbours in one write each,
    /// and forgets it. Blocking.
    ///
    /// # Errors
    ///
    /// The write failed.
    pub fn write_to(&mut self, to: &std::fs::File) -> std::io::Result<()> {
        self.items.sort_unstable_by_key(|(at, _)| *at);
        self.items.dedup_by_key(|(at, _)| *at);
        let mut run: Vec<u8> = Vec::new();
        let mut run_at = 0u64;
        for (at, pair) in &self.items {
            if !run.is_empty() && run_at + run.len() as u64 != *at {
                to.write_all_at(&run, run_at)?;
                run.clear();
            }
            if run.is_empty() {
                run_at = *at;
            }
            run.extend_from_slice(pair);
        }
        if !run.is_empty() {
            to.write_all_at(&run, run_at)?;
        }
        self.items.clear();
        Ok(())
    }
}

/// Outboards up to this size are checked in memory; larger ones are read from the file.
const OUTBOARD_CHECK_IN_MEMORY: u64 = 64 * 1024 * 1024;

/// Checks an outboard assembled from received parents (`assembled`, for a content of `size`
/// bytes) against the content id: every parent pair must hash to the value its parent holds,
/// up to the root, so that it covers every chunk group of the content. Then syncs it and moves
/// it to `blobs/<content>.obao`. Costs one hash per 16 KiB of content, and does not read the
/// content. Blocking.
///
/// # Errors
///
/// If it is missing, of the wrong size, or any part does not chain up to the content id (the
/// file is left where it is), or it cannot be stored.
pub fn adopt_outboard(
    blobs: &Path,
    content: &ContentHash,
    assembled: &Path,
    size: u64,
) -> Result<PathBuf> {
    use bao_tree::io::outboard::PostOrderOutboard;
    let t = tree(size);
    let want = t.outboard_size();
    let file = std::fs::File::open(assembled)
        .with_context(|| format!("cannot open the assembled outboard {}", assembled.display()))?;
    let len = file.metadata()?.len();
    if len != want {
        bail!("the assembled outboard has {len} bytes, not {want}");
    }
    let all = ChunkRanges::from(ChunkNum(0)..t.chunks());
    let covered = |ranges: &mut dyn Iterator<Item = std::io::Result<std::ops::Range<ChunkNum>>>| {
        let mut chunks = 0u64;
        for r in ranges {
            let r = r?;
            chunks += r.end.0 - r.start.0;
        }
        std::io::Result::Ok(chunks)
    };
    let chunks = if want <= OUTBOARD_CHECK_IN_MEMORY {
        let mut bytes = vec![0u8; usize::try_from(want)?];
        file.read_exact_at(&mut bytes, 0)?;
        let ob = PostOrderOutboard {
            root: root(content),
            tree: t,
            data: bytes,
        };
        covered(&mut bao_tree::io::sync::valid_outboard_ranges(ob, &all).into_iter())?
    } else {
        let ob = PostOrderOutboard {
            root: root(content),
            tree: t,
            data: &file,
        };
        covered(&mut bao_tree::io::sync::valid_outboard_ranges(ob, &all).into_iter())?
    };
    if chunks != t.chunks().0 {
        bail!(
            "the assembled outboard chains up to the content id for {chunks} of {} chunks",
            t.chunks().0
        );
    }
    file.sync_all()?;
    drop(file);
    let path = outboard_path(blobs, content);
    std::fs::rename(assembled, &path)
        .with_context(|| format!("cannot store the outboard {}", path.display()))?;
    tracing::debug!(%content, bytes = want, "assembled outboard checked and stored");
    Ok(path)
}

/// Words for a decoding failure; `true` when the sender is at fault (a hash did not match),
/// `false` when the stream merely failed or ended early.
pub fn judge(e: &bao_tree::io::DecodeError) -> (bool, String) {
    use bao_tree::io::DecodeError as D;
    match e {
        D::LeafHashMismatch(c) => (
            true,
            format!(
                "the chunk group at byte {} does not match the content id",
                c.to_bytes()
            ),
        ),
        D::ParentHashMismatch(n) => (
            true,
            format!("a parent hash (tree node {n:?}) does not match the content id"),
        ),
        D::LeafNotFound(c) => (
            false,
            format!("the stream ended before the data at byte {}", c.to_bytes()),
        ),
        D::ParentNotFound(_) => (false, "the stream ended before a parent hash".into()),
        D::Io(e) => (false, format!("stream failed: {e}")),
    }
}

/// Decodes and verifies a whole response body held in memory (`ranges` as requested, empty
/// for the whole content): the content bytes of those ranges, in order. For tools and tests.
///
/// # Errors
///
/// If a hash does not match or the body ends early.
pub async fn decode_body(
    content: &ContentHash,
    size: u64,
    ranges: &[(u64, u64)],
    body: &[u8],
) -> Result<Vec<u8>> {
    use bao_tree::io::fsm::{ResponseDecoder, ResponseDecoderNext};
    use bao_tree::io::BaoContentItem;
    let whole = [(0, size)];
    let ranges = if ranges.is_empty() {
        &whole[..]
    } else {
        ranges
    };
    let mut out = Vec::new();
    let mut decoder = ResponseDecoder::new(root(content), chunk_ranges(ranges), tree(size), body);
    loop {
        match decoder.next().await {
            ResponseDecoderNext::More((next, item)) => {
                decoder = next;
                match item {
                    Ok(BaoContentItem::Leaf(leaf)) => out.extend_from_slice(&leaf.data),
                    Ok(BaoContentItem::Parent(_)) => {}
                    Err(e) => bail!("{}", judge(&e).1),
                }
            }
            ResponseDecoderNext::Done(_) => return Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ISO 37156 7.2: the tree's root is the plain BLAKE3 (`b3sum`) for any chunk group size,
    /// so the content id stays what it was.
    #[test]
    fn the_tree_root_is_the_plain_blake3_for_every_chunk_group_size() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for len in [0, 1, 1024, 1025, 16 * 1024, 16 * 1024 + 1, 300_000] {
            let bytes = &data[..len];
            let plain = blake3::hash(bytes);
            for log in [0u8, 2, 4, 6] {
                let ob = bao_tree::io::outboard::PostOrderMemOutboard::create(
                    bytes,
                    BlockSize::from_chunk_log(log),
                );
                assert_eq!(
                    ob.root.as_bytes(),
                    plain.as_bytes(),
                    "len {len}, chunk log {log}"
                );
            }
        }
    }

    #[test]
    fn an_aligned_buffer_stays_aligned_as_it_grows() {
        let mut b = AlignedBuf::with_capacity(8192);
        assert!(b.capacity() >= 8192);
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 253) as u8).collect();
        b.extend_from_slice(&data[..5000]);
        b.extend_from_slice(&data[5000..]);
        assert_eq!(b.as_slice(), &data[..]);
        assert_eq!(b.as_slice().as_ptr().align_offset(DIRECT_ALIGN), 0);
        b.clear();
        assert!(b.is_empty());
        assert!(b.capacity() >= 20_000);
        let empty = AlignedBuf::default();
        assert_eq!(empty.capacity(), 0);
    }

    /// Direct writes, their unaligned tails and plain writes all land where they should.
    #[test]
    fn direct_and_plain_writes_make_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = std::fs::OpenOptions::new()
            .write(true)
            .read(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let size = 5 * DIRECT_ALIGN as u64 + 300;
        file.set_len(size).unwrap();
        let direct = open_direct(&path);
        let want: Vec<u8> = (0..size).map(|i| (i * 31 % 256) as u8).collect();
        let mut buf = AlignedBuf::with_capacity(4 * DIRECT_ALIGN);
        // Aligned start, unaligned end (the file's tail).
        buf.extend_from_slice(&want[2 * DIRECT_ALIGN..]);
        assert!(write_all_at(
            &file,
            direct.as_ref(),
            buf.as_slice(),
            2 * DIRECT_ALIGN as u64
        )
        .unwrap());
        // Unaligned start: through the page cache.
        assert!(write_all_at(&file, direct.as_ref(), &want[100..2 * DIRECT_ALIGN], 100).unwrap());
        // No direct file at all.
        assert!(write_all_at(&file, None, &want[..100], 0).unwrap());
        let mut got = vec![0u8; size as usize];
        file.read_exact_at(&mut got, 0).unwrap();
        assert!(got == want, "the file differs from what was written");
    }

    /// Encodes `ranges` of `data` as a source would, decodes them as a receiver does, and
    /// keeps the parents the way a fetch does.
    async fn received_parents(data: &[u8], ranges: &[(u64, u64)], into: &std::fs::File) {
        use bao_tree::io::fsm::{ResponseDecoder, ResponseDecoderNext};
        use bao_tree::io::BaoContentItem;
        let size = data.len() as u64;
        let ob = bao_tree::io::outboard::PostOrderMemOutboard::create(data, block_size());
        let content = ContentHash(*ob.root.as_bytes());
        for &(a, b) in ranges {
            let mut body = Vec::new();
            bao_tree::io::sync::encode_ranges_validated(
                data,
                &ob,
                &chunk_ranges(&[(a, b)]),
                &mut body,
            )
            .unwrap();
            let mut parents = Parents::new(size);
            let mut decoder = ResponseDecoder::new(
                root(&content),
                chunk_ranges(&[(a, b)]),
                tree(size),
                &body[..],
            );
            while let ResponseDecoderNext::More((next, item)) = decoder.next().await {
                decoder = next;
                if let BaoContentItem::Parent(p) = item.unwrap() {
                    parents.add(&p);
                }
            }
            parents.write_to(into).unwrap();
        }
    }

    /// A zeroed file of the outboard's size for `size` bytes of content, as a fetch makes.
    fn empty_outboard(path: &Path, size: u64) -> std::fs::File {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .unwrap();
        f.set_len(tree(size).outboard_size()).unwrap();
        f
    }

    /// transfer.md §7: the outboard assembled from the parents of every segment is the one
    /// built from the whole file; with a segment's parents missing it is refused.
    #[tokio::test]
    async fn an_outboard_assembled_from_received_parents_is_the_built_one() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir.path().join("blobs");
        std::fs::create_dir_all(&blobs).unwrap();
        let seg = 256 * 1024u64;
        for size in [100u64, 16 * 1024, 16 * 1024 + 1, 3 * seg, 5 * seg + 4321] {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 + i / 5000) as u8).collect();
            let content = ContentHash(*blake3::hash(&data).as_bytes());
            let file = dir.path().join(format!("d{size}"));
            std::fs::write(&file, &data).unwrap();
            let built = build_outboard(&blobs, &content, &file, size).unwrap();
            let reference = std::fs::read(&built).unwrap();
            std::fs::remove_file(&built).unwrap();
            let segments: Vec<(u64, u64)> = (0..size.div_ceil(seg))
                .map(|i| (i * seg, ((i + 1) * seg).min(size)))
                .collect();

            let assembled = dir.path().join(format!("a{size}"));
            let f = empty_outboard(&assembled, size);
            // Out of order, as lanes finish.
            let mut order = segments.clone();
            order.reverse();
            received_parents(&data, &order, &f).await;
            let kept = adopt_outboard(&blobs, &content, &assembled, size).unwrap();
            assert_eq!(std::fs::read(&kept).unwrap(), reference, "size {size}");
            assert!(!assembled.exists());
            std::fs::remove_file(&kept).unwrap();

            if segments.len() > 1 {
                let f = empty_outboard(&assembled, size);
                received_parents(&data, &segments[1..], &f).await;
                let e = adopt_outboard(&blobs, &content, &assembled, size).unwrap_err();
                assert!(
                    format!("{e}").contains("chains up to the content id for"),
                    "{e}"
                );
                assert!(!outboard_path(&blobs, &content).exists());
            }
        }
    }

    #[test]
    fn a_built_outboard_has_the_tree_size_and_a_corrupt_copy_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let file = dir.path().join("d");
        std::fs::write(&file, &data).unwrap();
        let content = ContentHash(*blake3::hash(&data).as_bytes());
        let blobs = dir.path().join("blobs");
        let p = ensure_outboard(&blobs, &content, &file, data.len() as u64).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().len(),
            tree(data.len() as u64).outboard_size()
        );
        let mut bad = data.clone();
        bad[5000] ^= 1;
        std::fs::write(&file, &bad).unwrap();
        std::fs::remove_file(&p).unwrap();
        let e = ensure_outboard(&blobs, &content, &file, data.len() as u64).unwrap_err();
        assert!(format!("{e}").contains("corrupt"), "{e}");
        assert!(!p.exists());
    }
}
