//! MD5 of files (or parts of them) and of downloads as they arrive, many at once on one
//! thread.
//!
//! One MD5 stream cannot be split: each 64-byte block depends on the one before, so a
//! core hashes about 600-700 MB/s. Files moved side by side are independent streams,
//! though, and SIMD hashes 8 or 16 of them in the time of one (measured here: 16
//! streams at 5.2 GB/s on one core against 0.68 GB/s for one). So every stream is
//! handed to a single hashing thread, which feeds a piece of each to the SIMD lanes
//! together:
//! - a download's received bytes, handed over as they are written ([`Landing`]), so its
//!   MD5 is ready as soon as its last byte is, and no byte is read twice (reading the
//!   file back from the page cache cost as much CPU as the hashing itself);
//! - the bytes of a file on disk ([`Md5Files::digest`]): uploads (the whole file, and
//!   each block before it goes up), and large blobs downloaded as parallel ranges.

use bytes::{Buf, Bytes};
use std::collections::VecDeque;
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use md5_many::{Md5Many, Md5State};

/// How long pieces ready to hash may wait for others to hash beside: fewer than 8 hash
/// at the speed of one, 8 at three quarters the speed of 16 (AVX2 against AVX-512).
/// Short against a download: a 10 MiB blob takes a quarter of a second or more to
/// arrive.
const GATHER: Duration = Duration::from_millis(20);

/// The most hashed from one stream per pass (and read from a file at once).
const PIECE: usize = 256 << 10;

/// Received bytes one download may have waiting to be hashed before it waits itself:
/// memory stays bounded however far the hashing falls behind. 32 downloads of 10 MiB
/// blobs peaked at 74-89 MiB of RSS with 1 MiB each, at 46-59 MiB with 256 KiB, and
/// took the same time.
const MAX_QUEUED: usize = 256 << 10;

/// How often the thread looks for downloads that gave up, while it waits for bytes.
const IDLE: Duration = Duration::from_millis(100);

/// How often the thread looks again at a file a reader is bringing in (at 600 MB/s, a
/// [`PIECE`] every 0.4 ms). A wake-up from the reader after each 1 MiB read did no
/// better: 8 alternating cold uploads of 1 GiB took 2.81-3.13 s polling, 2.92-3.14 s
/// woken.
const READER_POLL: Duration = Duration::from_millis(1);

/// The hashing thread's handle; the thread ends when this and every [`Landing`] are
/// dropped.
pub struct Md5Files {
    jobs: Sender<Msg>,
}

enum Msg {
    Job(Job),
    /// A download has handed over more bytes: look again.
    Wake,
}

struct Job {
    source: Source,
    reply: tokio::sync::oneshot::Sender<std::io::Result<[u8; 16]>>,
}

enum Source {
    /// The bytes `range` of a file, all written.
    File {
        file: Arc<File>,
        range: Range<u64>,
        /// How far a reader going through the file in order has read it (into the page
        /// cache): the bytes below are hashed without waiting on the disk, and the
        /// others wait for it, while streams with bytes at hand go on. `None`: read
        /// from the disk as needed.
        cached: Option<Arc<AtomicU64>>,
    },
    /// Bytes handed over as they arrive.
    Stream(Arc<Stream>),
}

/// The received bytes of one download not yet hashed, in order. Its [`Landing`] adds
/// at the back; the hashing thread alone takes from the front.
struct Stream {
    len: u64,
    chunks: Mutex<VecDeque<Bytes>>,
    /// Bytes in `chunks`.
    queued: AtomicUsize,
    /// Bytes handed over in all.
    received: AtomicU64,
    /// Signalled when `queued` falls to [`MAX_QUEUED`] or below.
    room: tokio::sync::Notify,
}

/// A download hashed as its bytes arrive: hand them over in order with
/// [`Landing::feed`], then ask for the MD5 with [`Landing::digest`]. Dropped before
/// that, the hashing of the download stops.
pub struct Landing {
    stream: Arc<Stream>,
    jobs: Sender<Msg>,
    answer: tokio::sync::oneshot::Receiver<std::io::Result<[u8; 16]>>,
}

fn gone() -> std::io::Error {
    std::io::Error::other("the MD5 thread has stopped")
}

impl Md5Files {
    /// Starts the hashing thread.
    pub fn start() -> std::io::Result<Md5Files> {
        let (jobs, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("stagehand-md5".into())
            .spawn(move || serve(rx))?;
        Ok(Md5Files { jobs })
    }

    /// The MD5 of the bytes `range` of `file`, all of them written; with `cached`, hashed
    /// only as far as a reader in order has brought the file in (see [`Source::File`]).
    pub async fn digest(
        &self,
        file: Arc<File>,
        range: Range<u64>,
        cached: Option<Arc<AtomicU64>>,
    ) -> std::io::Result<[u8; 16]> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Msg::Job(Job {
                source: Source::File {
                    file,
                    range,
                    cached,
                },
                reply,
            }))
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// Starts hashing a download of `len` bytes, handed over as it arrives.
    pub fn landing(&self, len: u64) -> std::io::Result<Landing> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let stream = Arc::new(Stream {
            len,
            chunks: Mutex::new(VecDeque::new()),
            queued: AtomicUsize::new(0),
            received: AtomicU64::new(0),
            room: tokio::sync::Notify::new(),
        });
        self.jobs
            .send(Msg::Job(Job {
                source: Source::Stream(stream.clone()),
                reply,
            }))
            .map_err(|_| gone())?;
        Ok(Landing {
            stream,
            jobs: self.jobs.clone(),
            answer,
        })
    }
}

impl Landing {
    /// Hands over the next received bytes (no copy: the chunks are shared). Waits while
    /// more than [`MAX_QUEUED`] bytes of this download are waiting to be hashed.
    pub async fn feed(&self, chunks: Vec<Bytes>) {
        let s = &self.stream;
        let n: usize = chunks.iter().map(Bytes::len).sum();
        if n == 0 {
            return;
        }
        s.chunks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(chunks.into_iter().filter(|c| !c.is_empty()));
        s.received.fetch_add(n as u64, Ordering::Relaxed);
        s.queued.fetch_add(n, Ordering::Release);
        let _ = self.jobs.send(Msg::Wake);
        while s.queued.load(Ordering::Acquire) > MAX_QUEUED {
            s.room.notified().await;
        }
    }

    /// The MD5 of the whole download, once every byte has been handed over.
    pub async fn digest(self) -> std::io::Result<[u8; 16]> {
        let got = self.stream.received.load(Ordering::Relaxed);
        if got != self.stream.len {
            return Err(std::io::Error::other(format!(
                "{got} of {} bytes were handed over to be hashed",
                self.stream.len
            )));
        }
        self.answer.await.map_err(|_| gone())?
    }
}

/// A stream being hashed: its state and how far it is hashed.
struct Lane {
    job: Job,
    state: Md5State,
    /// Bytes hashed so far.
    done: u64,
}

/// What one lane hashes in one pass.
enum Piece {
    /// Read from its file into one of the thread's buffers.
    Read(Vec<u8>),
    /// The front of its received bytes.
    Received(Bytes),
}

impl Piece {
    fn bytes(&self) -> &[u8] {
        match self {
            Piece::Read(v) => v,
            Piece::Received(b) => b,
        }
    }
}

impl Lane {
    /// How many bytes the job hashes.
    fn len(&self) -> u64 {
        match &self.job.source {
            Source::File { range, .. } => range.end.saturating_sub(range.start),
            Source::Stream(s) => s.len,
        }
    }

    /// Whether there are bytes to hash now.
    fn can_go(&self) -> bool {
        match &self.job.source {
            Source::File { range, cached, .. } => {
                let next = (range.start + self.done + PIECE as u64).min(range.end);
                self.done < self.len()
                    && cached
                        .as_ref()
                        .is_none_or(|c| c.load(Ordering::Acquire) >= next)
            }
            Source::Stream(s) => s.queued.load(Ordering::Acquire) > 0,
        }
    }

    /// Whether this lane waits for a reader rather than for a download's bytes (which
    /// wake the thread when they come).
    fn waits_on_reader(&self) -> bool {
        matches!(
            &self.job.source,
            Source::File {
                cached: Some(_),
                ..
            }
        )
    }

    /// Takes this pass's piece: from a file, up to [`PIECE`] bytes; from received
    /// bytes, the front chunk up to [`PIECE`], after hashing here what cannot go to the
    /// SIMD lanes (bytes up to the next 64-byte boundary, chunks shorter than 64).
    /// `None` when nothing is left for the lanes this pass.
    fn piece(&mut self, spare: &mut Vec<Vec<u8>>) -> std::io::Result<Option<Piece>> {
        match &self.job.source {
            Source::File { file, range, .. } => {
                let k = (self.len() - self.done).min(PIECE as u64) as usize;
                let mut buf = spare.pop().unwrap_or_default();
                buf.resize(k, 0);
                if let Err(e) = file.read_exact_at(&mut buf, range.start + self.done) {
                    spare.push(buf);
                    return Err(e);
                }
                Ok(Some(Piece::Read(buf)))
            }
            Source::Stream(s) => {
                let mut chunks = s.chunks.lock().unwrap_or_else(|e| e.into_inner());
                let mut taken = 0;
                let front = loop {
                    let Some(front) = chunks.front_mut() else {
                        break None;
                    };
                    let used = (self.state.bytes_hashed() % 64) as usize;
                    let k = match used {
                        0 if front.len() >= 64 => break Some(front.clone()),
                        0 => front.len(),
                        _ => (64 - used).min(front.len()),
                    };
                    self.state.update(&front[..k]);
                    front.advance(k);
                    taken += k;
                    if front.is_empty() {
                        chunks.pop_front();
                    }
                };
                drop(chunks);
                self.done += taken as u64;
                release(s, taken);
                Ok(front.map(|mut b| {
                    b.truncate(PIECE.min(b.len() / 64 * 64));
                    Piece::Received(b)
                }))
            }
        }
    }

    /// After a pass: counts the `n` bytes hashed from the lanes.
    fn hashed(&mut self, n: usize) {
        if let Source::Stream(s) = &self.job.source {
            let mut chunks = s.chunks.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(front) = chunks.front_mut() {
                front.advance(n);
                if front.is_empty() {
                    chunks.pop_front();
                }
            }
            drop(chunks);
            release(s, n);
        }
        self.done += n as u64;
    }
}

/// Takes `n` hashed bytes off a stream's count of waiting ones, and wakes its download
/// if that makes room.
fn release(s: &Stream, n: usize) {
    let before = s.queued.fetch_sub(n, Ordering::AcqRel);
    if before > MAX_QUEUED && before - n <= MAX_QUEUED {
        s.room.notify_one();
    }
}

fn serve(jobs: Receiver<Msg>) {
    let engine = Md5Many::new();
    let mut queue: VecDeque<Lane> = VecDeque::new();
    let mut spare: Vec<Vec<u8>> = Vec::new();
    // Since when fewer streams have had bytes to hash than could (16, or all there are);
    // cleared once that many have, or none.
    let mut short_since: Option<Instant> = None;
    let mut open = true;
    loop {
        while open {
            match jobs.try_recv() {
                Ok(msg) => take(msg, &mut queue),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => open = false,
            }
        }
        // Downloads that gave up: their bytes are no longer wanted.
        queue.retain(|l| !l.job.reply.is_closed());
        let ready = queue.iter().filter(|l| l.can_go()).count();
        if ready == 0 {
            short_since = None;
            // Closed, every job left has all its bytes: nothing can be waiting.
            if !open {
                return;
            }
            let msg = if queue.is_empty() {
                jobs.recv().map_err(|_| RecvTimeoutError::Disconnected)
            } else if queue.iter().any(Lane::waits_on_reader) {
                jobs.recv_timeout(READER_POLL)
            } else {
                jobs.recv_timeout(IDLE)
            };
            match msg {
                Ok(msg) => take(msg, &mut queue),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => open = false,
            }
            continue;
        }
        // Company can come only from streams not ready yet: the last few downloads of a
        // batch hash at once. Waiting for lanes that cannot fill let each of the last 4
        // of 100 blobs of 10 MiB move 256 KiB per wait: they took 0.47-0.54 s after the
        // 96th had landed, and take 0.10-0.21 s without (5 runs each).
        if ready >= queue.len().min(16) {
            short_since = None;
        } else if open {
            // Few streams ready: wait a moment for company, once, then hash until caught up.
            let since = *short_since.get_or_insert_with(Instant::now);
            if let Some(left) = GATHER.checked_sub(since.elapsed()) {
                match jobs.recv_timeout(left) {
                    Ok(msg) => take(msg, &mut queue),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => open = false,
                }
                continue;
            }
        }
        hash_ready(engine, &mut queue, &mut spare, ready);
    }
}

/// One pass: a piece of each of the first 16 or 8 streams ready (all, if fewer than 8),
/// hashed together in SIMD lanes; finished streams get their MD5, the unfinished go to
/// the back of the queue.
fn hash_ready(engine: Md5Many, queue: &mut VecDeque<Lane>, spare: &mut Vec<Vec<u8>>, ready: usize) {
    let take = match ready {
        n if n >= 16 => 16,
        n if n >= 8 => 8,
        n => n,
    };
    let mut batch = Vec::with_capacity(take);
    let mut rest = VecDeque::with_capacity(queue.len());
    for mut l in queue.drain(..) {
        if batch.len() == take || !l.can_go() {
            rest.push_back(l);
            continue;
        }
        match l.piece(spare) {
            Ok(piece) => batch.push((l, piece)),
            Err(e) => {
                let _ = l.job.reply.send(Err(e));
            }
        }
    }
    *queue = rest;
    // Received pieces cut to one length (a multiple of 64): SIMD lanes in lockstep.
    if let Some(len) = batch
        .iter()
        .filter_map(|(_, p)| match p {
            Some(Piece::Received(b)) => Some(b.len()),
            _ => None,
        })
        .min()
    {
        for (_, p) in &mut batch {
            if let Some(Piece::Received(b)) = p {
                b.truncate(len);
            }
        }
    }
    let hashing: Vec<usize> = (0..batch.len()).filter(|&k| batch[k].1.is_some()).collect();
    let mut states: Vec<Md5State> = hashing.iter().map(|&k| batch[k].0.state).collect();
    let pieces: Vec<&[u8]> = hashing
        .iter()
        .filter_map(|&k| batch[k].1.as_ref().map(Piece::bytes))
        .collect();
    update(engine, &mut states, &pieces);
    for (&k, state) in hashing.iter().zip(states) {
        batch[k].0.state = state;
    }
    for (mut l, piece) in batch {
        if let Some(piece) = piece {
            l.hashed(piece.bytes().len());
            if let Piece::Read(buf) = piece {
                spare.push(buf);
            }
        }
        if l.done >= l.len() {
            let _ = l.job.reply.send(Ok(l.state.finalize()));
        } else {
            queue.push_back(l);
        }
    }
}

/// Queues a new job (an empty one is answered at once); a wake-up needs nothing more.
fn take(msg: Msg, queue: &mut VecDeque<Lane>) {
    if let Msg::Job(job) = msg {
        let lane = Lane {
            job,
            state: Md5State::new(),
            done: 0,
        };
        if lane.len() == 0 {
            let _ = lane.job.reply.send(Ok(lane.state.finalize()));
        } else {
            queue.push_back(lane);
        }
    }
}

/// Hashes `pieces` into `states` in groups of 16, 8, 4, 2 and 1. md5-many 0.1 runs 8 or
/// 16 lanes at SIMD speed (3.9 and 5.2 GB/s here) but other counts far slower: 5 to 7
/// lanes in one call measured 160-220 MB/s, below one lane alone (680 MB/s).
fn update(engine: Md5Many, states: &mut [Md5State], pieces: &[&[u8]]) {
    let mut at = 0;
    for width in [16, 8, 4, 2, 1] {
        while states.len() - at >= width {
            engine.update_many(&mut states[at..at + width], &pieces[at..at + width]);
            at += width;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Many files of awkward sizes at once, each against the reference crate's MD5.
    #[tokio::test]
    async fn many_files_hash_as_one_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let hasher = Md5Files::start().unwrap();
        let sizes = [
            0u64, 1, 63, 64, 65, 1000, 262_143, 262_144, 262_145, 3_000_001,
        ];
        let (mut digests, mut wants) = (Vec::new(), Vec::new());
        for (n, size) in sizes.iter().cycle().take(40).enumerate() {
            let bytes: Vec<u8> = (0..*size).map(|k| (k as usize * 31 + n) as u8).collect();
            let path = dir.path().join(format!("f{n}"));
            File::create(&path).unwrap().write_all(&bytes).unwrap();
            let file = Arc::new(File::open(&path).unwrap());
            wants.push(<[u8; 16]>::from(<md5::Md5 as md5::Digest>::digest(&bytes)));
            digests.push(hasher.digest(file, 0..*size, None));
        }
        let got = futures::future::join_all(digests).await;
        for (g, want) in got.into_iter().zip(wants) {
            assert_eq!(g.unwrap(), want);
        }
    }

    /// Parts of one file (the blocks of an upload) at once, each against the reference.
    #[tokio::test]
    async fn parts_of_a_file_hash_as_slices() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        let bytes: Vec<u8> = (0..3_000_017u32)
            .map(|k| (k * 7 + k / 1000) as u8)
            .collect();
        File::create(&path).unwrap().write_all(&bytes).unwrap();
        let file = Arc::new(File::open(&path).unwrap());
        let hasher = Md5Files::start().unwrap();
        let len = bytes.len() as u64;
        let block = 300_001u64;
        let ranges: Vec<Range<u64>> = (0..len.div_ceil(block))
            .map(|i| i * block..((i + 1) * block).min(len))
            .chain([0..len, 5..5])
            .collect();
        let got = futures::future::join_all(
            ranges
                .iter()
                .map(|r| hasher.digest(file.clone(), r.clone(), None)),
        )
        .await;
        for (g, r) in got.into_iter().zip(&ranges) {
            let want = <md5::Md5 as md5::Digest>::digest(&bytes[r.start as usize..r.end as usize]);
            assert_eq!(g.unwrap(), <[u8; 16]>::from(want), "range {r:?}");
        }
    }

    /// Downloads hashed as they arrive in chunks of every awkward size (under 64 bytes,
    /// off the 64-byte grid, larger than a piece, more than may wait at once), beside a
    /// file on disk: each MD5 matches the reference.
    #[tokio::test]
    async fn downloads_hash_as_they_arrive() {
        let dir = tempfile::tempdir().unwrap();
        let hasher = Md5Files::start().unwrap();
        let sizes = [5usize, 262_144, 1_000_000, 9_000_017];
        let steps = [1usize, 63, 64, 100, 4_097, 70_001, 300_000, 3 << 20];
        let mut streams = Vec::new();
        for (n, size) in sizes.iter().enumerate() {
            let bytes: Vec<u8> = (0..*size).map(|k| (k * 13 + n) as u8).collect();
            let landing = hasher.landing(*size as u64).unwrap();
            streams.push((Bytes::from(bytes), landing, 0usize));
        }
        let whole = dir.path().join("whole");
        std::fs::write(&whole, b"written before").unwrap();
        let before = hasher.digest(Arc::new(File::open(&whole).unwrap()), 0..14, None);
        // The downloads take turns, each handing over a few chunks at a time.
        let mut turn = 0;
        while streams.iter().any(|(b, _, at)| *at < b.len()) {
            for (bytes, landing, at) in &mut streams {
                let mut chunks = Vec::new();
                for _ in 0..3 {
                    let end = (*at + steps[turn % steps.len()]).min(bytes.len());
                    chunks.push(bytes.slice(*at..end));
                    *at = end;
                    turn += 1;
                }
                landing.feed(chunks).await;
            }
        }
        let want = <[u8; 16]>::from(<md5::Md5 as md5::Digest>::digest(b"written before"));
        assert_eq!(before.await.unwrap(), want);
        for (bytes, landing, _) in streams {
            let want = <[u8; 16]>::from(<md5::Md5 as md5::Digest>::digest(&bytes));
            assert_eq!(
                landing.digest().await.unwrap(),
                want,
                "{} bytes",
                bytes.len()
            );
        }
    }

    /// A download that gives up half-way (its landing dropped) holds nothing up, and a
    /// digest asked for before every byte has arrived is an error, not a wrong answer.
    #[tokio::test]
    async fn an_unfinished_download_answers_nothing_wrong() {
        let hasher = Md5Files::start().unwrap();
        let bytes = Bytes::from(vec![7u8; 1_000_000]);
        let abandoned = hasher.landing(1_000_000).unwrap();
        abandoned.feed(vec![bytes.slice(..600_000)]).await;
        drop(abandoned);
        let early = hasher.landing(1_000_000).unwrap();
        early.feed(vec![bytes.slice(..600_000)]).await;
        let err = early.digest().await.unwrap_err();
        assert!(err.to_string().contains("600000 of 1000000"), "{err}");
        let whole = hasher.landing(1_000_000).unwrap();
        whole.feed(vec![bytes.clone()]).await;
        let want = <[u8; 16]>::from(<md5::Md5 as md5::Digest>::digest(&bytes));
        assert_eq!(whole.digest().await.unwrap(), want);
    }

    /// A file shorter than promised is an error, not a hash of what is there.
    #[tokio::test]
    async fn a_short_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short");
        File::create(&path).unwrap().write_all(b"abc").unwrap();
        let hasher = Md5Files::start().unwrap();
        let file = Arc::new(File::open(&path).unwrap());
        assert!(hasher.digest(file, 0..10, None).await.is_err());
    }
}
