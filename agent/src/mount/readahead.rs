//! Sequential-read detection for one open file: which blocks to fetch ahead of the
//! reader. A reader that keeps reading where it left off gets a window that doubles
//! with every read, up to a maximum; a jump elsewhere shrinks it back to nothing, so a
//! random reader (an index lookup, a shuffle of records) never pays for data it skips.
//!
//! Pure logic, no I/O: the filesystem asks, `blocks` fetches.

use std::ops::Range;

/// Read-ahead state of one open file handle.
#[derive(Debug, Clone, Default)]
pub struct Readahead {
    /// Where a sequential reader's next read would start.
    next_offset: u64,
    /// Blocks fetched ahead of the reader, when sequential.
    window: u64,
    /// Blocks below this index have already been asked for.
    requested_until: u64,
}

impl Readahead {
    /// Records a read of `offset..end` in a file of `blocks` blocks of `block_size`
    /// bytes and returns the blocks to prefetch (never the ones the read itself needs).
    /// Once the window is wide, blocks are asked for `batch` at a time, so that they
    /// can be fetched with one request.
    ///
    /// The kernel issues read-ahead requests concurrently, so they may arrive a little
    /// out of order: a read within one block of where the last one ended still counts
    /// as sequential.
    pub fn on_read(
        &mut self,
        offset: u64,
        end: u64,
        block_size: u64,
        blocks: u64,
        max_window: u64,
        batch: u64,
    ) -> Range<u64> {
        let block_size = block_size.max(1);
        let sequential = offset.abs_diff(self.next_offset) <= block_size;
        if sequential {
            self.window = (self.window * 2).clamp(1, max_window.max(1));
            self.next_offset = self.next_offset.max(end);
        } else {
            self.window = 0;
            self.requested_until = 0;
            self.next_offset = end;
        }
        if self.window == 0 || max_window == 0 || end == 0 {
            return 0..0;
        }
        let current = (end - 1) / block_size;
        let start = (current + 1).max(self.requested_until);
        let stop = (current + 1 + self.window).min(blocks);
        if start >= stop || (stop - start < batch.min(self.window) && stop < blocks) {
            return 0..0;
        }
        self.requested_until = stop;
        start..stop
    }

    /// The current window, in blocks.
    pub fn window(&self) -> u64 {
        self.window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BS: u64 = 4;

    #[test]
    fn a_sequential_reader_gets_a_growing_window() {
        let mut ra = Readahead::default();
        // Reads of 2 bytes in a file of 100 blocks of 4 bytes, max window 8.
        assert_eq!(ra.on_read(0, 2, BS, 100, 8, 1), 1..2);
        assert_eq!(ra.on_read(2, 4, BS, 100, 8, 1), 2..3);
        assert_eq!(ra.on_read(4, 6, BS, 100, 8, 1), 3..6);
        assert_eq!(ra.on_read(6, 8, BS, 100, 8, 1), 6..10);
        assert_eq!(ra.on_read(8, 10, BS, 100, 8, 1), 10..11);
        assert_eq!(ra.window(), 8);
        // Caps at the window and never asks twice for a block.
        assert_eq!(ra.on_read(10, 12, BS, 100, 8, 1), 0..0);
        assert_eq!(ra.on_read(12, 16, BS, 100, 8, 1), 11..12);
    }

    #[test]
    fn never_past_the_end_of_the_file() {
        let mut ra = Readahead::default();
        assert_eq!(ra.on_read(0, 4, BS, 2, 8, 1), 1..2);
        assert_eq!(ra.on_read(4, 8, BS, 2, 8, 1), 0..0);
    }

    #[test]
    fn a_jump_resets_the_window() {
        let mut ra = Readahead::default();
        ra.on_read(0, 4, BS, 100, 8, 1);
        ra.on_read(4, 8, BS, 100, 8, 1);
        assert!(ra.window() > 1);
        assert_eq!(ra.on_read(200, 202, BS, 100, 8, 1), 0..0);
        assert_eq!(ra.window(), 0);
        // Reading on from there is sequential again, starting small.
        assert_eq!(ra.on_read(202, 204, BS, 100, 8, 1), 51..52);
        assert_eq!(ra.window(), 1);
    }

    #[test]
    fn slightly_reordered_reads_stay_sequential() {
        let mut ra = Readahead::default();
        ra.on_read(0, 2, BS, 100, 8, 1);
        ra.on_read(4, 6, BS, 100, 8, 1); // skipped 2..4, within one block
        ra.on_read(2, 4, BS, 100, 8, 1); // and here it comes
        assert_eq!(ra.window(), 4);
    }

    #[test]
    fn a_random_first_read_prefetches_nothing() {
        let mut ra = Readahead::default();
        assert_eq!(ra.on_read(4000, 4002, BS, 2000, 8, 1), 0..0);
    }

    #[test]
    fn a_wide_window_asks_in_batches() {
        let mut ra = Readahead::default();
        let mut asked = Vec::new();
        for i in 0..64u64 {
            let r = ra.on_read(i * 2, i * 2 + 2, BS, 1000, 16, 8);
            if !r.is_empty() {
                asked.push(r);
            }
        }
        // The ramp (asked for as soon as the window allows), then 8 at a time.
        assert_eq!(asked[..3], [1..2, 2..6, 6..19]);
        assert!(asked[3..].iter().all(|r| r.end - r.start >= 8), "{asked:?}");
        // Near the end of the file the rest is asked for at once.
        let mut ra = Readahead::default();
        let tail: Vec<_> = (0..8u64)
            .map(|i| ra.on_read(i * 4, i * 4 + 4, BS, 10, 16, 8))
            .collect();
        assert!(tail.iter().any(|r| r.end == 10), "{tail:?}");
    }

    #[test]
    fn no_window_when_read_ahead_is_off() {
        let mut ra = Readahead::default();
        assert_eq!(ra.on_read(0, 4, BS, 100, 0, 1), 0..0);
    }
}
