//! "Did you mean …?": the nearest of a list of known names to a misspelt one, for spec
//! errors (`comand` → `command`, `datastor` → `datastore`) and for a program that is
//! not on the PATH (`pyhton3` → `python3`). Pure: no I/O.

/// The known name nearest to `word`, if it is near enough to be a typo: at most one
/// edit between names of up to 4 letters, two up to 8, three beyond (counting the
/// longer of the two; a swap of two letters is one edit). `None` for an exact match:
/// nothing to suggest; `None` for a word under 3 letters, which is near everything.
pub fn nearest<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    if word.chars().count() < 3 {
        return None;
    }
    let limit = |k: &str| match word.chars().count().max(k.chars().count()) {
        0..=4 => 1,
        5..=8 => 2,
        _ => 3,
    };
    known
        .into_iter()
        .map(|k| (distance(&word.to_lowercase(), &k.to_lowercase()), k))
        .filter(|(d, k)| *d > 0 && *d <= limit(k))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// `; did you mean `x`?` when a known name is near `word`, else nothing.
pub fn did_you_mean<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    nearest(word, known)
        .map(|k| format!("; did you mean `{k}`?"))
        .unwrap_or_default()
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps
/// of adjacent letters, each one edit.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_name_and_strangers_find_none() {
        let fields = ["name", "command", "datastore", "path", "mode"];
        assert_eq!(nearest("comand", fields), Some("command"));
        assert_eq!(nearest("datastor", fields), Some("datastore"));
        assert_eq!(nearest("mdoe", fields), Some("mode"));
        assert_eq!(nearest("mnt", ["mount", "download"]), Some("mount"));
        assert_eq!(nearest("pyhton3", ["python3", "perl"]), Some("python3"));
        assert_eq!(nearest("retries", fields), None);
        assert_eq!(nearest("mode", fields), None);
        assert_eq!(did_you_mean("pth", fields), "; did you mean `path`?");
        assert_eq!(did_you_mean("xyzzy", fields), "");
    }
}
