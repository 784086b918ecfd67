//! TESTNET ONLY, not a wire feature: added latency, and packet loss modelled as TCP
//! retransmission delay, between chosen peers, for the research testnet's `latency` step where
//! the kernel has no `tc netem` (or the nodes run in one process, where netem cannot tell them
//! apart).
//!
//! When [`enable`] has been called in a process (`cix-testnet` for its in-process nodes, and
//! `cix node run` only with the hidden testnet switch `--testnet-faults`, which also lets the
//! admin API call [`set`]: [`crate::testnet_faults`]), every node started afterwards in that
//! process builds its TCP transport with a muxer wrapper, [`Delayed`]: bytes read from a
//! connection are held until `delay` after they came off the socket, `delay` being that of
//! the [`Link`] which [`set`] last gave the pair (this node, that peer). Each side delays what it
//! receives, so with the same link set on both sides a message takes `delay` longer one way and
//! a round trip `2 × delay`, as netem on each end's egress would. QUIC is left out in this mode
//! (the testnet listens on TCP).
//!
//! # Loss
//!
//! The wrapper sits above TCP, so it cannot drop a packet; and it need not, because TCP never
//! shows a lost packet to the application. What the application sees is the retransmission:
//! the bytes of the lost segment, and every byte after it on that connection (head-of-line
//! blocking), arrive about one retransmission timeout later. That is what a [`Link`]'s `loss`
//! (the share `p` of packets lost, `0 ≤ p < 1`) does here:
//!
//! - each chunk read from a substream counts as lost with the probability that at least one of
//!   its [`SEGMENT_BYTES`]-byte segments would be, `1 − (1 − p)^segments`;
//! - a lost chunk is held [`Link::retransmission_delay`] longer than its delay;
//! - nothing overtakes it: a chunk's due time is never earlier than that of the chunk read
//!   before it on the same connection, whichever substream it belongs to, as TCP delivers one
//!   byte stream in order.
//!
//! The draws are reproducible: whether the pair's `k`-th chunk (counted from when its link was
//! last changed) is lost is a hash of the link's seed and `k`, so two runs that give the pair
//! the same seed draw the same losses per chunk index. Which bytes make up the `k`-th chunk
//! follows the sockets' timing, so the same bytes are not always hit.
//!
//! Left out, deliberately: fast retransmit and tail loss probes (which recover a lost segment
//! of a busy bulk flow sooner than the timeout; the testnet's gossip messages are small and
//! rarely followed by enough data to trigger them), a retransmission lost again (real TCP then
//! doubles its timeout; here the retransmission always arrives, so each loss costs one timeout
//! and a chunk is never held longer than `delay` plus one timeout after it came in, unless an
//! earlier chunk holds it), and the smaller congestion window after a loss (which slows bulk
//! transfers further). At small losses these change little for gossip; at large ones the model
//! understates the damage.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use std::future::Future;

use futures::{AsyncRead, AsyncWrite};
use libp2p::core::muxing::{StreamMuxer, StreamMuxerEvent};
use libp2p::PeerId;
use tokio::time::Instant;

use crate::testnet_faults::MAX_DELAY_MS;

/// Most bytes one substream holds back while they wait out their delay; past it the wrapper
/// stops reading the socket (back-pressure), so a fast sender costs bounded memory.
pub const MAX_HELD_BYTES: usize = 1024 * 1024;

/// Linux's smallest retransmission timeout (`TCP_RTO_MIN`, 200 ms): the timer that resends a
/// lost segment never fires sooner than this after the segment was sent.
pub const MIN_RTO: Duration = Duration::from_millis(200);

/// Payload bytes in one TCP segment on a 1500-byte Ethernet path: 1500 less 20 of IPv4 header,
/// 20 of TCP header and 12 of the timestamp option Linux sends by default.
pub const SEGMENT_BYTES: usize = 1448;

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// How one pair's reads are slowed: the added one-way delay, the share of packets taken as
/// lost, and the seed of the loss draws. Built with [`Link::new`], which keeps every field in
/// its bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    delay: Duration,
    loss: f64,
    seed: u64,
}

/// Why [`Link::new`] refused its input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// A delay over [`MAX_DELAY_MS`].
    #[error("delay {0:?} is over the {MAX_DELAY_MS} ms allowed")]
    DelayTooLong(Duration),
    /// A loss that is not a finite share from 0 up to, not including, 1.
    #[error("loss {0} is not a share from 0 up to (not including) 1")]
    BadLoss(f64),
}

impl Link {
    /// Neither delay nor loss.
    pub const NONE: Self = Self {
        delay: Duration::ZERO,
        loss: 0.0,
        seed: 0,
    };

    /// A link that delays reads by `delay` and takes a share `loss` of packets as lost,
    /// drawing which from `seed`.
    ///
    /// # Errors
    ///
    /// [`LinkError::DelayTooLong`] over [`MAX_DELAY_MS`]; [`LinkError::BadLoss`] unless `loss`
    /// is finite and `0 ≤ loss < 1` (at 1 every retransmission would be lost too, which this
    /// model cannot show: cut the peers apart instead).
    pub fn new(delay: Duration, loss: f64, seed: u64) -> Result<Self, LinkError> {
        if delay > Duration::from_millis(MAX_DELAY_MS) {
            return Err(LinkError::DelayTooLong(delay));
        }
        if !(loss.is_finite() && (0.0..1.0).contains(&loss)) {
            return Err(LinkError::BadLoss(loss));
        }
        Ok(Self { delay, loss, seed })
    }

    /// The added one-way delay.
    #[must_use]
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// The share of packets taken as lost.
    #[must_use]
    pub fn loss(&self) -> f64 {
        self.loss
    }

    /// The seed of the loss draws.
    #[must_use]
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Whether this link changes nothing.
    #[must_use]
    pub fn is_none(&self) -> bool {
        self.delay.is_zero() && self.loss == 0.0
    }

    /// How much later a lost chunk arrives: the sender's retransmission timeout, since the
    /// copy it sends again travels the same one-way delay the first one would have.
    ///
    /// Linux sets that timeout to the smoothed round trip plus a variance term it never lets
    /// fall below [`MIN_RTO`] (`tcp_rtt_estimator` and `tcp_set_rto` in `net/ipv4`), so on a
    /// steady path it is about the round trip plus 200 ms. The round trip here is twice the
    /// link's delay (each side delays what it reads; loopback adds next to nothing), hence
    /// `MIN_RTO + 2 × delay`: 200 ms on an undelayed link, 500 ms at 150 ms one way. A flat
    /// rule such as `max(200 ms, 3 × delay)` would ignore the round trip up to 67 ms of delay,
    /// which Linux does not; RFC 6298's 1 s floor is not what Linux peers use.
    #[must_use]
    pub fn retransmission_delay(&self) -> Duration {
        MIN_RTO + self.delay * 2
    }

    /// The chance that a chunk of `len` bytes has at least one lost segment:
    /// `1 − (1 − loss)^segments`, with `segments = ⌈len / SEGMENT_BYTES⌉` (at least one).
    #[must_use]
    pub fn chunk_loss(&self, len: usize) -> f64 {
        let segments = len.div_ceil(SEGMENT_BYTES).max(1);
        let segments = i32::try_from(segments).unwrap_or(i32::MAX);
        1.0 - (1.0 - self.loss).powi(segments)
    }

    /// Whether the pair's `index`-th chunk, `len` bytes long, counts as lost: a uniform draw
    /// in `[0, 1)` made from the seed and the index alone, below [`Link::chunk_loss`].
    #[must_use]
    pub fn is_lost(&self, index: u64, len: usize) -> bool {
        self.loss > 0.0 && draw(self.seed, index) < self.chunk_loss(len)
    }

    /// When a chunk may be handed on, and whether it counts as lost: `len` bytes read at
    /// `arrived`, the pair's `index`-th chunk, on a connection whose chunk before it is due
    /// at `floor`. Never earlier than `floor`, so nothing overtakes a held chunk.
    #[must_use]
    pub fn due(
        &self,
        arrived: Instant,
        len: usize,
        index: u64,
        floor: Option<Instant>,
    ) -> (Instant, bool) {
        let lost = self.is_lost(index, len);
        let hold = if lost {
            self.delay + self.retransmission_delay()
        } else {
            self.delay
        };
        // The bounds of `Link::new` keep this well within an Instant's range.
        let own = arrived.checked_add(hold).unwrap_or_else(|| {
            tracing::error!(?hold, "testnet delay: a hold past the clock's range");
            arrived
        });
        (floor.map_or(own, |f| own.max(f)), lost)
    }
}

/// A uniform draw in `[0, 1)` for chunk `index` of a pair seeded with `seed`: the first eight
/// bytes of the BLAKE3 hash of both, the top 53 bits of them scaled down. Depends on nothing
/// else, so a run with the same seed makes the same draw for the same index.
fn draw(seed: u64, index: u64) -> f64 {
    let mut input = [0u8; 16];
    input[..8].copy_from_slice(&seed.to_le_bytes());
    input[8..].copy_from_slice(&index.to_le_bytes());
    let hash = blake3::hash(&input);
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    // 53 bits: every value exactly representable, the result strictly below 1.
    (u64::from_le_bytes(first) >> 11) as f64 / (1u64 << 53) as f64
}

/// One pair's link and how many chunks have been read under it.
#[derive(Debug)]
struct PairState {
    link: Link,
    /// Chunks scheduled since the link last changed: the next chunk's index.
    next: u64,
}

type Pair = Arc<Mutex<PairState>>;

type Table = Mutex<HashMap<(PeerId, PeerId), Pair>>;

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

fn pair(local: PeerId, remote: PeerId) -> Pair {
    let mut t = table().lock().unwrap_or_else(|e| e.into_inner());
    t.entry((local, remote))
        .or_insert_with(|| {
            Arc::new(Mutex::new(PairState {
                link: Link::NONE,
                next: 0,
            }))
        })
        .clone()
}

/// Gives a pair a link; a changed link starts its chunk count again.
fn store(p: &Pair, link: Link) {
    let mut s = p.lock().unwrap_or_else(|e| e.into_inner());
    if s.link != link {
        s.link = link;
        s.next = 0;
    }
}

/// From now on, node `local` reads from each of `links`' peers through its link, and from
/// every other peer through none. Takes effect on open connections at once.
pub fn set(local: PeerId, links: &HashMap<PeerId, Link>) {
    let others: Vec<Pair> = table()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|((l, r), _)| *l == local && !links.contains_key(r))
        .map(|(_, p)| p.clone())
        .collect();
    for p in &others {
        store(p, Link::NONE);
    }
    for (r, link) in links {
        store(&pair(local, *r), *link);
    }
    tracing::debug!(
        node = %local,
        delayed = links.values().filter(|l| !l.delay.is_zero()).count(),
        lossy = links.values().filter(|l| l.loss > 0.0).count(),
        "testnet delay: links set"
    );
}

/// What the substreams of one connection share: the pair's link, and when the chunk read last
/// on the connection is due (TCP delivers one ordered byte stream, whichever substream the
/// bytes are for).
#[derive(Debug)]
struct Line {
    pair: Pair,
    last_due: Mutex<Option<Instant>>,
}

impl Line {
    fn new(pair: Pair) -> Self {
        Self {
            pair,
            last_due: Mutex::new(None),
        }
    }

    /// Whether reads may pass straight through now: the link changes nothing and every chunk
    /// read on the connection is due.
    fn is_clear(&self, now: Instant) -> bool {
        let none = self
            .pair
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .link
            .is_none();
        none && self
            .last_due
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none_or(|d| d <= now)
    }

    /// When a chunk of `len` bytes read at `arrived` may be handed on ([`Link::due`]), taking
    /// the pair's next chunk index.
    fn schedule(&self, len: usize, arrived: Instant) -> Instant {
        let (link, index) = {
            let mut s = self.pair.lock().unwrap_or_else(|e| e.into_inner());
            let index = s.next;
            s.next = s.next.wrapping_add(1);
            (s.link, index)
        };
        let mut last = self.last_due.lock().unwrap_or_else(|e| e.into_inner());
        let (due, lost) = link.due(arrived, len, index, *last);
        if lost {
            tracing::trace!(
                index,
                len,
                "testnet delay: chunk taken as lost, held for retransmission"
            );
        }
        *last = Some(due);
        due
    }
}

/// A muxer whose substreams delay what they read by the pair's current link.
pub struct Delayed<M> {
    inner: M,
    line: Arc<Line>,
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
            line: Arc::new(Line::new(pair(local, remote))),
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
            .map_ok(|s| DelayedStream::new(s, this.line.clone()))
    }

    fn poll_outbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let this = self.get_mut();
        Pin::new(&mut this.inner)
            .poll_outbound(cx)
            .map_ok(|s| DelayedStream::new(s, this.line.clone()))
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

/// A substream whose reads come out when their connection's link says ([`Link::due`]).
pub struct DelayedStream<S> {
    inner: S,
    line: Arc<Line>,
    /// Bytes read and when each chunk may be handed on.
    held: VecDeque<(Instant, Vec<u8>)>,
    held_bytes: usize,
    /// The inner stream ended (or failed) after what is held.
    ended: Option<io::Result<()>>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> DelayedStream<S> {
    fn new(inner: S, line: Arc<Line>) -> Self {
        Self {
            inner,
            line,
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
        if this.held.is_empty() && this.ended.is_none() && this.line.is_clear(Instant::now()) {
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
                    let due = this.line.schedule(n, Instant::now());
                    this.held.push_back((due, chunk));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn some_peer() -> PeerId {
        libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id()
    }

    fn link(delay_ms: u64, loss: f64, seed: u64) -> Link {
        Link::new(Duration::from_millis(delay_ms), loss, seed).unwrap()
    }

    #[test]
    fn a_link_takes_only_a_bounded_delay_and_a_loss_below_one() {
        for bad in [f64::NAN, f64::INFINITY, -0.1, 1.0, 1.5] {
            assert!(
                matches!(
                    Link::new(Duration::ZERO, bad, 0),
                    Err(LinkError::BadLoss(_))
                ),
                "{bad}"
            );
        }
        let long = Duration::from_millis(MAX_DELAY_MS + 1);
        assert_eq!(Link::new(long, 0.0, 0), Err(LinkError::DelayTooLong(long)));
        assert!(Link::new(Duration::from_millis(MAX_DELAY_MS), 0.999, 0).is_ok());
        assert!(Link::new(Duration::ZERO, 0.0, 0).unwrap().is_none());
        assert!(!link(0, 0.01, 0).is_none());
    }

    #[test]
    fn the_retransmission_delay_is_linuxs_floor_plus_the_round_trip() {
        assert_eq!(link(0, 0.1, 0).retransmission_delay(), MIN_RTO);
        assert_eq!(
            link(150, 0.1, 0).retransmission_delay(),
            Duration::from_millis(500)
        );
        // A chunk is lost when any of its segments is.
        let l = link(0, 0.1, 0);
        assert!((l.chunk_loss(0) - 0.1).abs() < 1e-12);
        assert!((l.chunk_loss(SEGMENT_BYTES) - 0.1).abs() < 1e-12);
        assert!((l.chunk_loss(SEGMENT_BYTES + 1) - 0.19).abs() < 1e-12);
        assert_eq!(link(10, 0.0, 0).chunk_loss(READ_CHUNK), 0.0);
    }

    #[test]
    fn loss_draws_hit_the_expected_share_and_repeat_with_the_seed() {
        const CHUNKS: u64 = 20_000;
        let l = link(50, 0.1, 42);
        // Three segments a chunk: 1 − 0.9³ = 0.271 of them lost.
        let len = 3 * SEGMENT_BYTES;
        let lost: Vec<bool> = (0..CHUNKS).map(|i| l.is_lost(i, len)).collect();
        let share = lost.iter().filter(|x| **x).count() as f64 / CHUNKS as f64;
        assert!((share - l.chunk_loss(len)).abs() < 0.015, "{share}");
        // The same seed draws the same losses per chunk index; another seed others.
        let again: Vec<bool> = (0..CHUNKS)
            .map(|i| link(0, 0.1, 42).is_lost(i, len))
            .collect();
        assert_eq!(lost, again);
        let other: Vec<bool> = (0..CHUNKS)
            .map(|i| link(50, 0.1, 43).is_lost(i, len))
            .collect();
        assert_ne!(lost, other);
        // No loss, no draw that counts.
        assert!((0..CHUNKS).all(|i| !link(50, 0.0, 42).is_lost(i, len)));
    }

    #[test]
    fn lost_chunks_wait_a_retransmission_and_nothing_overtakes_them() {
        const CHUNKS: u64 = 5_000;
        let l = link(50, 0.2, 7);
        let (delay, rto) = (l.delay(), l.retransmission_delay());
        let start = Instant::now();
        let mut floor = None;
        let (mut lost, mut held_behind) = (0, 0);
        for i in 0..CHUNKS {
            // One 1000-byte chunk every 10 ms: a retransmission spans many of them.
            let arrived = start + Duration::from_millis(10 * i);
            let (due, was_lost) = l.due(arrived, 1000, i, floor);
            let own = if was_lost {
                lost += 1;
                arrived + delay + rto
            } else {
                arrived + delay
            };
            assert_eq!(due, floor.map_or(own, |f: Instant| own.max(f)), "chunk {i}");
            if let Some(f) = floor {
                assert!(due >= f, "chunk {i} overtook the one before it");
            }
            if !was_lost && due > own {
                held_behind += 1;
            }
            floor = Some(due);
        }
        let share = f64::from(lost) / CHUNKS as f64;
        assert!((share - 0.2).abs() < 0.03, "{share}");
        // Chunks after a lost one wait for it: head-of-line blocking, as in TCP.
        assert!(held_behind > lost, "{held_behind} held behind {lost} lost");
    }

    /// Reads of a scripted substream: its chunks, one a read, then the end.
    struct Scripted(VecDeque<Vec<u8>>);

    impl AsyncRead for Scripted {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let Some(chunk) = self.get_mut().0.pop_front() else {
                return Poll::Ready(Ok(0));
            };
            buf[..chunk.len()].copy_from_slice(&chunk);
            Poll::Ready(Ok(chunk.len()))
        }
    }

    #[tokio::test]
    async fn a_lost_chunk_holds_the_other_substreams_of_its_connection() {
        use futures::AsyncReadExt as _;
        // A seed whose chunk 0 is lost and chunk 1 is not.
        let seed = (0..)
            .find(|s| link(20, 0.5, *s).is_lost(0, 10) && !link(20, 0.5, *s).is_lost(1, 10))
            .unwrap();
        let l = link(20, 0.5, seed);
        let line = Arc::new(Line::new(Arc::new(Mutex::new(PairState {
            link: l,
            next: 0,
        }))));
        let mut a = DelayedStream::new(Scripted(VecDeque::from([vec![1; 10]])), line.clone());
        let mut b = DelayedStream::new(Scripted(VecDeque::from([vec![2; 10]])), line);
        let start = Instant::now();
        let mut buf = [0u8; 64];
        // Stream a reads chunk 0 (lost), then b reads chunk 1, which waits behind it.
        let (ra, rb) = futures::join!(a.read(&mut buf[..32]), async {
            tokio::task::yield_now().await;
            let mut mine = [0u8; 32];
            let n = b.read(&mut mine).await;
            (n, Instant::now())
        });
        let a_at = Instant::now();
        assert_eq!(ra.unwrap(), 10);
        let (nb, b_at) = rb;
        assert_eq!(nb.unwrap(), 10);
        let lost_due = start + l.delay() + l.retransmission_delay();
        assert!(
            b_at >= lost_due,
            "b came {:?} after the start",
            b_at - start
        );
        assert!(a_at >= lost_due);
        // Both then end.
        assert_eq!(a.read(&mut buf).await.unwrap(), 0);
        assert_eq!(b.read(&mut buf).await.unwrap(), 0);
    }

    #[test]
    fn set_gives_named_peers_their_link_and_every_other_none() {
        let (me, a, b) = (some_peer(), some_peer(), some_peer());
        set(
            me,
            &HashMap::from([(a, link(10, 0.1, 1)), (b, link(20, 0.0, 2))]),
        );
        let pa = pair(me, a);
        pa.lock().unwrap().next = 5;
        // The same link again keeps the count; a changed one starts it again.
        set(me, &HashMap::from([(a, link(10, 0.1, 1))]));
        assert_eq!(pa.lock().unwrap().next, 5);
        assert_eq!(pair(me, b).lock().unwrap().link, Link::NONE);
        set(me, &HashMap::from([(a, link(10, 0.2, 1))]));
        let s = pa.lock().unwrap();
        assert_eq!((s.link, s.next), (link(10, 0.2, 1), 0));
    }
}
