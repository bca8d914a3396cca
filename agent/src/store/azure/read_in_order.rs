//! Reads a file being uploaded from start to end, a bounded distance ahead of the blocks
//! in flight, so that a file not in the page cache streams from disk as one sequential
//! read.
//!
//! The blocks of a large upload are read at 16 places at once (each hashed, then sent).
//! From a cold cache the disk served that more slowly than one reader in order: 1 GiB
//! went up to Azurite in 3.9-4.3 s with 16 scattered readers (each block hinted with
//! `POSIX_FADV_WILLNEED`), 3.6-4.0 s with this thread ahead of them (curl, sending 16
//! separate part files: 3.1-3.7 s). A hint for the whole file at once was slower still:
//! 4.5-4.7 s. With the file already cached, the thread only copies it once, on a core
//! of its own.
//!
//! The blocks' MD5s are hashed just behind the reader ([`ReadInOrder::progress`]), so the
//! first block goes up as soon as it has been read, not once the first 16 all have:
//! 3.5-3.7 s against curl's 3.25-3.45 s in the same alternating runs.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What one read carries.
const PIECE: usize = 1 << 20;

/// The reader; it stops when this is dropped.
pub struct ReadInOrder {
    shared: Arc<Shared>,
    /// How far past the end of the last block started the reader may go.
    window: u64,
}

struct Shared {
    /// The reader reads no further than this.
    limit: AtomicU64,
    stop: AtomicBool,
    /// How far the reader has read; `u64::MAX` once it has stopped (or never started),
    /// so that nobody waits for it.
    read: Arc<AtomicU64>,
}

impl ReadInOrder {
    /// Starts reading the first `size` bytes of `file`, up to `window` bytes ahead of
    /// the blocks started (see [`ReadInOrder::started`]). Without a thread, nothing is
    /// read ahead: the upload goes on without it.
    pub fn start(file: Arc<File>, size: u64, window: u64) -> ReadInOrder {
        let shared = Arc::new(Shared {
            limit: AtomicU64::new(window),
            stop: AtomicBool::new(false),
            read: Arc::new(AtomicU64::new(0)),
        });
        let s = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("stagehand-read-ahead".into())
            .spawn(move || {
                read(&file, size, &s);
                s.read.store(u64::MAX, Ordering::Release);
            });
        if let Err(e) = spawned {
            tracing::debug!("no read-ahead thread: {e}");
            shared.read.store(u64::MAX, Ordering::Release);
        }
        ReadInOrder { shared, window }
    }

    /// How far the file has been read in order (into the page cache); `u64::MAX` once
    /// the reader has stopped.
    pub fn progress(&self) -> Arc<AtomicU64> {
        self.shared.read.clone()
    }

    /// Says that the block ending at byte `end` has started: the reader may go on to
    /// `end` + the window.
    pub fn started(&self, end: u64) {
        self.shared
            .limit
            .fetch_max(end.saturating_add(self.window), Ordering::Relaxed);
    }
}

impl Drop for ReadInOrder {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

/// Reads `file` in order into one buffer, which is thrown away: only the page cache is
/// wanted. Stops at the end, at an error (the upload reports its own) or when told to.
fn read(file: &File, size: u64, s: &Shared) {
    let mut buf = vec![0u8; PIECE];
    let mut at = 0u64;
    while at < size && !s.stop.load(Ordering::Relaxed) {
        if at >= s.limit.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        let k = (size - at).min(PIECE as u64) as usize;
        match file.read_at(&mut buf[..k], at) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                at += n as u64;
                s.read.store(at, Ordering::Release);
            }
        }
    }
}
