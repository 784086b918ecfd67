//! TESTNET ONLY, not a wire feature: added latency between chosen peers, for the research
//! testnet's `latency` step where the kernel has no `tc netem` (or the nodes run in one
//! process, where netem cannot tell them apart).
//!
//! When [`enable`] has been called in a process (`cix-testnet` for its in-process nodes, and
//! `cix node run` only with the hidden testnet switch `--testnet-faults`, which also lets the
//! admin API call [`set`]: [`crate::testnet_faults`]), every node started afterwards in that
//! process builds its TCP transport with a muxer wrapper, [`Delayed`]: bytes read from a connection are held until `delay` after they
//! came off the socket, where `delay` is what [`set`] last gave for the pair (this node, that
//! peer). Each side delays what it receives, so with the same delay set on both sides a
//! message takes `delay` longer one way and a round trip `2 × delay`, as netem on each end's
//! egress would. QUIC is left out in this mode (the testnet listens on TCP). Loss is not
//! emulated: the runner refuses a `loss` above 0 in this mode.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use std::future::Future;

use futures::{AsyncRead, AsyncWrite};
use libp2p::core::muxing::{StreamMuxer, StreamMuxerEvent};
use libp2p::PeerId;
use tokio::time::Instant;

/// Most bytes one substream holds back while they wait out their delay; past it the wrapper
/// stops reading the socket (back-pressure), so a fast sender costs bounded memory.
pub const MAX_HELD_BYTES: usize = 1024 * 1024;

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;

static ENABLED: AtomicBool = AtomicBool::new(false);

type Table = Mutex<HashMap<(PeerId, PeerId), Arc<AtomicU64>>>;

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(Default::default)
}

/// Turns the delaying transport on for nodes started from now on in this process.
pub fn enable() {
    ENABLED.store(true, Ordering::SeqCst);
}

/// Whether [`enable`] was called.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::SeqCst)
}

fn cell(local: PeerId, remote: PeerId) -> Arc<AtomicU64> {
    let mut t = table().lock().unwrap_or_else(|e| e.into_inner());
    t.entry((local, remote)).or_default().clone()
}

/// From now on, node `local` holds bytes from each of `delays`' peers for its delay, and bytes
/// from every other peer for none. Takes effect on open connections at once.
pub fn set(local: PeerId, delays: &HashMap<PeerId, Duration>) {
    let mut t = table().lock().unwrap_or_else(|e| e.into_inner());
    for ((l, r), c) in t.iter() {
        if *l == local && !delays.contains_key(r) {
            c.store(0, Ordering::Relaxed);
        }
    }
    for (r, d) in delays {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        t.entry((local, *r))
            .or_default()
            .store(nanos, Ordering::Relaxed);
    }
}

/// A muxer whose substreams delay what they read by the pair's current delay.
pub struct Delayed<M> {
    inner: M,
    delay: Arc<AtomicU64>,
}

impl<M> std::fmt::Debug for Delayed<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delayed").finish_non_exhaustive()
    }
}

impl<S> std::fmt::Debug for DelayedStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DelayedStream")
            .field("held_bytes", &self.held_bytes)
            .finish_non_exhaustive()
    }
}

impl<M> Delayed<M> {
    /// Wraps the muxer of a connection from `local` to `remote`.
    pub fn new(inner: M, local: PeerId, remote: PeerId) -> Self {
        Self {
            inner,
            delay: cell(local, remote),
        }
    }
}

impl<M> StreamMuxer for Delayed<M>
where
    M: StreamMuxer + Unpin,
    M::Substream: Unpin,
{
    type Substream = DelayedStream<M::Substream>;
    type Error = M::Error;

    fn poll_inbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let this = self.get_mut();
        Pin::new(&mut this.inner)
            .poll_inbound(cx)
            .map_ok(|s| DelayedStream::new(s, this.delay.clone()))
    }

    fn poll_outbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let this = self.get_mut();
        Pin::new(&mut this.inner)
            .poll_outbound(cx)
            .map_ok(|s| DelayedStream::new(s, this.delay.clone()))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll(cx)
    }
}

/// A substream whose reads come out `delay` after they arrived.
pub struct DelayedStream<S> {
    inner: S,
    delay: Arc<AtomicU64>,
    /// Bytes read and when each chunk may be handed on.
    held: VecDeque<(Instant, Vec<u8>)>,
    held_bytes: usize,
    /// The inner stream ended (or failed) after what is held.
    ended: Option<io::Result<()>>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> DelayedStream<S> {
    fn new(inner: S, delay: Arc<AtomicU64>) -> Self {
        Self {
            inner,
            delay,
            held: VecDeque::new(),
            held_bytes: 0,
            ended: None,
            timer: None,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for DelayedStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let delay = Duration::from_nanos(this.delay.load(Ordering::Relaxed));
        if delay.is_zero() && this.held.is_empty() && this.ended.is_none() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        // Take in everything the socket has now, stamped with when it may go on.
        while this.ended.is_none() && this.held_bytes < MAX_HELD_BYTES {
            let mut chunk = vec![0u8; READ_CHUNK];
            match Pin::new(&mut this.inner).poll_read(cx, &mut chunk) {
                Poll::Ready(Ok(0)) => this.ended = Some(Ok(())),
                Poll::Ready(Ok(n)) => {
                    chunk.truncate(n);
                    this.held_bytes += n;
                    this.held.push_back((Instant::now() + delay, chunk));
                }
                Poll::Ready(Err(e)) => this.ended = Some(Err(e)),
                Poll::Pending => break,
            }
        }
        loop {
            let Some((due, _)) = this.held.front() else {
                return match this.ended.take() {
                    // End of stream stays the end.
                    Some(Ok(())) => {
                        this.ended = Some(Ok(()));
                        Poll::Ready(Ok(0))
                    }
                    Some(Err(e)) => Poll::Ready(Err(e)),
                    None => Poll::Pending,
                };
            };
            let due = *due;
            if due <= Instant::now() {
                let (_, chunk) = this.held.front_mut().unwrap_or_else(|| unreachable!());
                let n = chunk.len().min(buf.len());
                buf[..n].copy_from_slice(&chunk[..n]);
                chunk.drain(..n);
                if chunk.is_empty() {
                    this.held.pop_front();
                }
                this.held_bytes -= n;
                return Poll::Ready(Ok(n));
            }
            let timer = this
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
            if timer.deadline() != due {
                timer.as_mut().reset(due);
            }
            match timer.as_mut().poll(cx) {
                Poll::Ready(()) => continue,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for DelayedStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}
