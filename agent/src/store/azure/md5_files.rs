//! MD5 of files (or parts of them), many at once on one thread: downloads as they
//! land, and large uploads (the whole file, and each block before it goes up).
//!
//! One MD5 stream cannot be split: each 64-byte block depends on the one before, so a
//! core hashes about 600-700 MB/s. Files moved side by side are independent streams,
//! though, and SIMD hashes 8 or 16 of them in the time of one (measured here: 16
//! streams at 5.2 GB/s on one core against 0.68 GB/s for one). So each file is handed
//! to a single hashing thread, which reads every file it holds a piece at a time (from
//! the page cache, as a rule) and feeds the pieces to the SIMD lanes together.
//! A download is hashed while it is still arriving ([`Landing`]), a piece at a time
//! behind the bytes written, so its MD5 is ready almost as soon as its last byte is.
//! Checking a downloaded file rather than the received bytes also covers the write to
//! disk.

use std::collections::VecDeque;
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use md5_many::{Md5Many, Md5State};

/// How long pieces ready to hash may wait for others to hash beside: fewer than 8 hash
/// at the speed of one. Short against a download: a 10 MiB blob takes a quarter of a
/// second or more to arrive.
const GATHER: Duration = Duration::from_millis(20);

/// What is read from each file per pass.
const PIECE: usize = 256 << 10;

/// How often the thread looks for downloads that gave up, while it waits for bytes.
const IDLE: Duration = Duration::from_millis(100);

/// The hashing thread's handle; the thread ends when this and every [`Landing`] are
/// dropped.
pub struct Md5Files {
    jobs: Sender<Msg>,
}

enum Msg {
    Job(Job),
    /// A file being written has more bytes: look again.
    Wake,
}

struct Job {
    file: Arc<File>,
    /// The bytes to hash.
    range: Range<u64>,
    /// How many bytes of the range are written, for a file still being written; `None`
    /// when all are.
    landed: Option<Arc<AtomicU64>>,
    reply: tokio::sync::oneshot::Sender<std::io::Result<[u8; 16]>>,
}

/// A file being written from its start, hashed as its bytes land: say how far it is
/// written with [`Landing::landed`], then ask for the MD5 with [`Landing::digest`].
/// Dropped before that, the hashing of the file stops.
pub struct Landing {
    len: u64,
    landed: Arc<AtomicU64>,
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

    /// The MD5 of the bytes `range` of `file`, all of them written.
    pub async fn digest(&self, file: Arc<File>, range: Range<u64>) -> std::io::Result<[u8; 16]> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Msg::Job(Job {
                file,
                range,
                landed: None,
                reply,
            }))
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// Starts hashing the first `len` bytes of `file` as they are written.
    pub fn landing(&self, file: Arc<File>, len: u64) -> std::io::Result<Landing> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let landed = Arc::new(AtomicU64::new(0));
        self.jobs
            .send(Msg::Job(Job {
                file,
                range: 0..len,
                landed: Some(landed.clone()),
                reply,
            }))
            .map_err(|_| gone())?;
        Ok(Landing {
            len,
            landed,
            jobs: self.jobs.clone(),
            answer,
        })
    }
}

impl Landing {
    /// Says that the first `n` bytes are written (and will not change).
    pub fn landed(&self, n: u64) {
        self.landed.store(n.min(self.len), Ordering::Release);
        let _ = self.jobs.send(Msg::Wake);
    }

    /// The MD5 of the whole file, once every byte has landed.
    pub async fn digest(self) -> std::io::Result<[u8; 16]> {
        let landed = self.landed.load(Ordering::Acquire);
        if landed < self.len {
            return Err(std::io::Error::other(format!(
                "only {landed} of {} bytes were written",
                self.len
            )));
        }
        self.answer.await.map_err(|_| gone())?
    }
}

/// A file being hashed: its state and how far it is read.
struct Lane {
    job: Job,
    state: Md5State,
    /// Bytes hashed so far, from the start of the range.
    done: u64,
}

impl Lane {
    /// How many bytes the job hashes.
    fn len(&self) -> u64 {
        self.job.range.end.saturating_sub(self.job.range.start)
    }

    /// Bytes written but not yet hashed.
    fn ready(&self) -> u64 {
        let landed = match &self.job.landed {
            Some(l) => l.load(Ordering::Acquire).min(self.len()),
            None => self.len(),
        };
        landed.saturating_sub(self.done)
    }

    /// Whether a piece can be hashed now: a whole one, or the rest of the file.
    fn can_go(&self) -> bool {
        let ready = self.ready();
        ready >= PIECE as u64 || (ready > 0 && self.done + ready == self.len())
    }
}

fn serve(jobs: Receiver<Msg>) {
    let engine = Md5Many::new();
    let mut queue: VecDeque<Lane> = VecDeque::new();
    let mut spare: Vec<Vec<u8>> = Vec::new();
    // Since when fewer than 8 pieces have been ready; cleared once 8 are, or none.
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
        // Downloads that gave up: their files are no longer wanted.
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
        if ready >= 8 {
            short_since = None;
        } else if open {
            // Few pieces ready: wait a moment for company, once, then hash until caught up.
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
        // One piece of each of the first 16 or 8 files ready (all, if fewer than 8),
        // read back and hashed together; the unfinished go to the back of the queue.
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
            let k = l.ready().min(PIECE as u64) as usize;
            let mut piece = spare.pop().unwrap_or_default();
            piece.resize(k, 0);
            match l
                .job
                .file
                .read_exact_at(&mut piece, l.job.range.start + l.done)
            {
                Ok(()) => {
                    l.done += k as u64;
                    batch.push((l, piece));
                }
                Err(e) => {
                    let _ = l.job.reply.send(Err(e));
                    spare.push(piece);
                }
            }
        }
        queue = rest;
        let mut states: Vec<Md5State> = batch.iter().map(|(l, _)| l.state).collect();
        let pieces: Vec<&[u8]> = batch.iter().map(|(_, p)| &p[..]).collect();
        update(engine, &mut states, &pieces);
        for ((mut l, piece), state) in batch.into_iter().zip(states) {
            spare.push(piece);
            l.state = state;
            if l.done >= l.len() {
                let _ = l.job.reply.send(Ok(l.state.finalize()));
            } else {
                queue.push_back(l);
            }
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
            digests.push(hasher.digest(file, 0..*size));
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
                .map(|r| hasher.digest(file.clone(), r.clone())),
        )
        .await;
        for (g, r) in got.into_iter().zip(&ranges) {
            let want = <md5::Md5 as md5::Digest>::digest(&bytes[r.start as usize..r.end as usize]);
            assert_eq!(g.unwrap(), <[u8; 16]>::from(want), "range {r:?}");
        }
    }

    /// Files hashed while they are written, beside one written already: each MD5
    /// matches the reference, whatever the sizes of the writes.
    #[tokio::test]
    async fn files_hash_as_they_land() {
        let dir = tempfile::tempdir().unwrap();
        let hasher = Md5Files::start().unwrap();
        let sizes = [5u64, 262_144, 1_000_000, 3_000_017];
        let mut files = Vec::new();
        for (n, size) in sizes.iter().enumerate() {
            let bytes: Vec<u8> = (0..*size).map(|k| (k as usize * 13 + n) as u8).collect();
            let file = Arc::new(File::create_new(dir.path().join(format!("f{n}"))).unwrap());
            let landing = hasher.landing(file.clone(), *size).unwrap();
            files.push((bytes, file, landing));
        }
        let whole = dir.path().join("whole");
        std::fs::write(&whole, b"written before").unwrap();
        let before = hasher.digest(Arc::new(File::open(&whole).unwrap()), 0..14);
        // Written in steps of different sizes, the files taking turns.
        let mut at = vec![0usize; files.len()];
        while at.iter().zip(&files).any(|(a, f)| *a < f.0.len()) {
            for (k, (bytes, file, landing)) in files.iter().enumerate() {
                let end = (at[k] + 70_001 * (k + 1)).min(bytes.len());
                file.write_all_at(&bytes[at[k]..end], at[k] as u64).unwrap();
                at[k] = end;
                landing.landed(end as u64);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let want = <[u8; 16]>::from(<md5::Md5 as md5::Digest>::digest(b"written before"));
        assert_eq!(before.await.unwrap(), want);
        for (bytes, _, landing) in files {
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
    /// digest asked for before every byte has landed is an error, not a wrong answer.
    #[tokio::test]
    async fn an_unfinished_landing_answers_nothing_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let hasher = Md5Files::start().unwrap();
        let bytes = vec![7u8; 1_000_000];
        let file = Arc::new(File::create_new(dir.path().join("half")).unwrap());
        file.write_all_at(&bytes[..600_000], 0).unwrap();
        let abandoned = hasher.landing(file.clone(), 1_000_000).unwrap();
        abandoned.landed(600_000);
        drop(abandoned);
        let early = hasher.landing(file.clone(), 1_000_000).unwrap();
        early.landed(600_000);
        let err = early.digest().await.unwrap_err();
        assert!(err.to_string().contains("600000 of 1000000"), "{err}");
        file.write_all_at(&bytes[600_000..], 600_000).unwrap();
        let got = hasher.digest(file, 0..1_000_000).await.unwrap();
        let want = <[u8; 16]>::from(<md5::Md5 as md5::Digest>::digest(&bytes));
        assert_eq!(got, want);
    }

    /// A file shorter than promised is an error, not a hash of what is there.
    #[tokio::test]
    async fn a_short_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short");
        File::create(&path).unwrap().write_all(b"abc").unwrap();
        let hasher = Md5Files::start().unwrap();
        let file = Arc::new(File::open(&path).unwrap());
        assert!(hasher.digest(file, 0..10).await.is_err());
    }
}
