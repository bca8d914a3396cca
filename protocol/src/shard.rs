//! Sharded inputs (`shard: by_file`, as SageMaker's `ShardedByS3Key`): which of the
//! files under an input's path one task of a scheduler's job takes. The rule is pure so
//! that every task computes its slice alone, without talking to the others: the files
//! sorted by name (byte order), cut into `count` contiguous slices whose sizes differ by
//! at most one; slice `index` is this task's. Together the slices cover every file once.
//!
//! It must never depend on anything but the sorted names and the two numbers: not on
//! listing order, time or host.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How an input is split across a scheduler's tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Shard {
    /// Whole files: each task downloads a disjoint slice of the files.
    ByFile,
}

/// One task's slice: `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Slice {
    /// This task's slice, from 0.
    pub index: u32,
    /// How many slices there are.
    pub count: u32,
}

impl Slice {
    /// The positions, in the name-sorted list of `n` files, of this slice's files.
    pub fn range(&self, n: usize) -> std::ops::Range<usize> {
        let count = self.count.max(1) as usize;
        let index = (self.index as usize).min(count);
        let at = |i: usize| (n * i) / count;
        at(index)..at((index + 1).min(count))
    }

    /// Keeps this slice's items of `items`, sorted by `name` first.
    pub fn select<T>(&self, mut items: Vec<T>, name: impl Fn(&T) -> &str) -> Vec<T> {
        items.sort_by(|a, b| name(a).cmp(name(b)));
        let r = self.range(items.len());
        items.into_iter().skip(r.start).take(r.len()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_cover_every_file_exactly_once_and_differ_by_at_most_one() {
        for n in [0usize, 1, 5, 199, 200, 201] {
            for count in [1u32, 3, 20, 250] {
                let mut seen = vec![0u32; n];
                let mut sizes = Vec::new();
                for index in 0..count {
                    let r = Slice { index, count }.range(n);
                    sizes.push(r.len());
                    for i in r {
                        seen[i] += 1;
                    }
                }
                assert!(seen.iter().all(|&c| c == 1), "n={n} count={count}");
                let (lo, hi) = (sizes.iter().min(), sizes.iter().max());
                assert!(hi.unwrap() - lo.unwrap() <= 1, "n={n} count={count}");
            }
        }
    }

    #[test]
    fn a_slice_is_chosen_by_name_not_by_listing_order() {
        let names = vec!["c", "a", "d", "b"];
        let mut shuffled = names.clone();
        shuffled.reverse();
        let s = Slice { index: 1, count: 2 };
        assert_eq!(s.select(names, |n| n), ["c", "d"]);
        assert_eq!(s.select(shuffled, |n| n), ["c", "d"]);
        assert_eq!(Slice { index: 0, count: 2 }.range(5), 0..2);
        assert_eq!(Slice { index: 1, count: 2 }.range(5), 2..5);
    }
}
