//! MD5 of files (or parts of them), many at once on one thread: downloads once
//! written, and large uploads (the whole file, and each block before it goes up).
//!
//! One MD5 stream cannot be split: each 64-byte block depends on the one before, so a
//! core hashes about 600-700 MB/s. Files moved side by side are independent streams,
//! though, and SIMD hashes 8 or 16 of them in the time of one (measured here: 16
//! streams at 5.2 GB/s on one core against 0.68 GB/s for one). So each file is handed
//! to a single hashing thread, which reads every file it holds a piece at a time (from
//! the page cache, as a rule) and feeds the pieces to the SIMD lanes together.
//! Checking a downloaded file rather than the received bytes also covers the write to
//! disk.

use std::collections::VecDeque;
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use md5_many::{Md5Many, Md5State};

/// How long a finished download may wait for others to hash beside. Short against the
/// download itself: a 10 MiB blob takes a quarter of a second or more to arrive.
const GATHER: Duration = Duration::from_millis(20);

/// What is read from each file per pass.
const PIECE: usize = 256 << 10;

/// The hashing thread's handle; the thread ends when this is dropped.
pub struct Md5Files {
    jobs: Sender<Job>,
}

struct Job {
    file: Arc<File>,
    /// The bytes to hash.
    range: Range<u64>,
    reply: tokio::sync::oneshot::Sender<std::io::Result<[u8; 16]>>,
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

    /// The MD5 of the bytes `range` of `file`.
    pub async fn digest(&self, file: Arc<File>, range: Range<u64>) -> std::io::Result<[u8; 16]> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let gone = || std::io::Error::other("the MD5 thread has stopped");
        self.jobs
            .send(Job { file, range, reply })
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// A file being hashed: its state, how far it is read, and when it arrived.
struct Lane {
    job: Job,
    state: Md5State,
    /// Bytes hashed so far, from the start of the range.
    done: u64,
    since: Instant,
}

fn serve(jobs: Receiver<Job>) {
    let engine = Md5Many::new();
    let mut queue: VecDeque<Lane> = VecDeque::new();
    let mut spare: Vec<Vec<u8>> = Vec::new();
    loop {
        // Wait for work when idle; then take every file that is waiting.
        if queue.is_empty() {
            match jobs.recv() {
                Ok(job) => queue.push_back(lane(job)),
                Err(_) => return,
            }
        }
        // A file not yet started waits up to GATHER for company: fewer than 8 files hash
        // at the speed of one. Started files never wait.
        let waiting_since = queue.iter().filter(|l| l.done == 0).map(|l| l.since).min();
        loop {
            match jobs.try_recv() {
                Ok(job) => queue.push_back(lane(job)),
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    let left = waiting_since
                        .filter(|_| queue.len() < 8)
                        .and_then(|t| GATHER.checked_sub(t.elapsed()));
                    match left.map(|left| jobs.recv_timeout(left)) {
                        Some(Ok(job)) => queue.push_back(lane(job)),
                        _ => break,
                    }
                }
            }
        }
        // One piece of each of the first 16 or 8 files (all, if fewer than 8), read back
        // and hashed together; the unfinished go to the back of the queue.
        let take = match queue.len() {
            n if n >= 16 => 16,
            n if n >= 8 => 8,
            n => n,
        };
        let mut batch = Vec::with_capacity(take);
        for mut l in queue.drain(..take) {
            let k = (l.len() - l.done).min(PIECE as u64) as usize;
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

impl Lane {
    /// How many bytes the job hashes.
    fn len(&self) -> u64 {
        self.job.range.end.saturating_sub(self.job.range.start)
    }
}

fn lane(job: Job) -> Lane {
    Lane {
        job,
        state: Md5State::new(),
        done: 0,
        since: Instant::now(),
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
