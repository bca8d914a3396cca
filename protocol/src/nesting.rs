//! How deep a YAML text nests, found by one pass over its characters that builds
//! nothing, so that [`crate::limits`] can refuse a pathological file before a parser
//! spends quadratic time on it (the YAML tokenizer itself is quadratic in flow depth:
//! it looks ahead to the end of every `[` before it hands out the first one).
//!
//! It counts flow collections (`[`, `{`) and block levels (indentation, `- ` and `? `
//! entries, `key:`), and skips what the parser reads as text: quoted scalars (which
//! may span lines), comments, block scalars (`|`, `>`) and the continuation lines of a
//! plain scalar. It errs towards counting: text it cannot place is scanned as
//! structure, never skipped, so a real level is not missed.

/// The 1-based line where the nesting first goes deeper than `limit`, if it does.
pub fn deeper_than(text: &str, limit: usize) -> Option<usize> {
    let mut scan = Scan::default();
    for (i, line) in text.split('\n').enumerate() {
        if scan.line(line.trim_end_matches('\r'), limit) {
            return Some(i + 1);
        }
    }
    None
}

/// What the end of the previous line left open.
#[derive(Default, Clone, Copy, PartialEq)]
enum Open {
    /// Nothing: the next line starts with structure.
    #[default]
    Nothing,
    /// A double-quoted scalar.
    Double,
    /// A single-quoted scalar.
    Single,
    /// A block scalar whose content lines are indented more than this column
    /// (`None`: a top-level block scalar, any indentation).
    Block(Option<usize>),
    /// A plain scalar in block context, which lines indented more than the level that
    /// holds it continue.
    Plain,
}

/// The scan's state between characters and lines.
#[derive(Default)]
struct Scan {
    /// Columns of the open block levels, innermost last.
    block: Vec<usize>,
    /// Open flow collections.
    flow: usize,
    open: Open,
    /// The last character that was structure or plain text (not space), on this line
    /// or, inside a flow collection, before it; `None` at the start of a block line.
    prev: Option<char>,
    /// Whether a space came after `prev`.
    spaced: bool,
}

impl Scan {
    /// Levels open now: block and flow together.
    fn depth(&self) -> usize {
        self.block.len() + self.flow
    }

    /// Scans one line; true when it nests deeper than `limit`.
    fn line(&mut self, line: &str, limit: usize) -> bool {
        let chars: Vec<char> = line.chars().collect();
        let indent = chars.iter().take_while(|c| **c == ' ').count();
        let blank = chars[indent..].iter().all(|c| c.is_whitespace());
        let mut at = 0;
        match self.open {
            Open::Double | Open::Single => {
                let Some(end) = self.quoted(&chars, 0) else {
                    return false;
                };
                at = end;
                self.prev = Some('"');
                self.spaced = false;
            }
            Open::Block(parent) if blank || parent.is_none_or(|p| indent > p) => return false,
            Open::Plain if blank => return false,
            Open::Plain
                if chars[indent] != '#' && self.block.last().is_none_or(|t| indent > *t) =>
            {
                return false
            }
            _ => self.open = Open::Nothing,
        }
        if at == 0 && self.flow == 0 {
            if blank || chars[indent] == '#' || (indent == 0 && chars[0] == '%') {
                return false;
            }
            at = self.block_start(&chars, indent);
            if self.depth() > limit {
                return true;
            }
        }
        self.rest(&chars, at, limit)
    }

    /// The start of a line in block context: pops the levels it closes, pushes one per
    /// `- ` / `? ` entry; returns where its content starts.
    fn block_start(&mut self, chars: &[char], indent: usize) -> usize {
        while self.block.last().is_some_and(|t| *t > indent) {
            self.block.pop();
        }
        let mut at = indent;
        if indent == 0 && (starts(chars, "---") || starts(chars, "...")) {
            self.block.clear();
            at = skip_spaces(chars, 3);
        }
        while at < chars.len()
            && (chars[at] == '-' || chars[at] == '?')
            && chars.get(at + 1).is_none_or(|c| *c == ' ')
        {
            if self.block.last() != Some(&at) {
                self.block.push(at);
            }
            at = skip_spaces(chars, at + 1);
        }
        self.prev = None;
        self.spaced = false;
        at
    }

    /// The rest of a line from `at`; true when it nests deeper than `limit`.
    fn rest(&mut self, chars: &[char], mut at: usize, limit: usize) -> bool {
        let content = at;
        let mut plain = false;
        while at < chars.len() {
            let c = chars[at];
            let start = self.token_start();
            if c == ' ' || c == '\t' {
                self.spaced = true;
                at += 1;
                continue;
            }
            if c == '#' && (at == 0 || chars[at - 1] == ' ' || chars[at - 1] == '\t') {
                break;
            }
            match c {
                '"' | '\'' if start => {
                    self.open = if c == '"' { Open::Double } else { Open::Single };
                    match self.quoted(chars, at + 1) {
                        Some(end) => at = end,
                        None => return false,
                    }
                    self.prev = Some('"');
                    self.spaced = false;
                    plain = false;
                    continue;
                }
                '[' | '{' if start || self.flow > 0 => {
                    self.flow += 1;
                    if self.depth() > limit {
                        return true;
                    }
                }
                ']' | '}' if self.flow > 0 => self.flow -= 1,
                '|' | '>' if start && self.flow == 0 => {
                    self.open = Open::Block(self.block.last().copied());
                    return false;
                }
                '&' | '!' | '*' if start => {
                    // An anchor or a tag: the node itself follows it. An alias is the
                    // whole node, and no plain scalar goes on after it.
                    while at < chars.len() && chars[at] != ' ' {
                        at += 1;
                    }
                    plain = false;
                    if c == '*' {
                        self.prev = Some(c);
                    }
                    continue;
                }
                ':' if self.flow == 0 && chars.get(at + 1).is_none_or(|n| *n == ' ') => {
                    // A key: its mapping is a level at the column the line's content starts.
                    if self.block.last().is_none_or(|t| *t < content) {
                        self.block.push(content);
                        if self.depth() > limit {
                            return true;
                        }
                    }
                    plain = false;
                }
                _ => plain = self.flow == 0 && !matches!(c, ',' | ']' | '}'),
            }
            self.prev = Some(c);
            self.spaced = false;
            at += 1;
        }
        if plain && self.flow == 0 {
            self.open = Open::Plain;
        }
        if self.flow > 0 {
            // A flow collection goes on across lines: a line break is a space.
            self.spaced = true;
        }
        false
    }

    /// Whether a node may start here: at the start of a line's content, after a flow
    /// indicator, or after a `:`, `-` or `?` indicator and a space.
    fn token_start(&self) -> bool {
        match self.prev {
            None => true,
            Some('[' | '{' | ',') => self.flow > 0,
            Some(':') => self.spaced || self.flow > 0,
            Some('-' | '?') => self.spaced,
            _ => false,
        }
    }

    /// Scans the quoted scalar `self.open` names from `from`; the index after its
    /// closing quote, or `None` (still open) when the line ends first.
    fn quoted(&mut self, chars: &[char], from: usize) -> Option<usize> {
        let mut at = from;
        while at < chars.len() {
            match (self.open, chars[at]) {
                (Open::Double, '\\') => at += 1,
                (Open::Double, '"') => break,
                (Open::Single, '\'') if chars.get(at + 1) == Some(&'\'') => at += 1,
                (Open::Single, '\'') => break,
                _ => {}
            }
            at += 1;
        }
        if at >= chars.len() {
            return None;
        }
        self.open = Open::Nothing;
        Some(at + 1)
    }
}

/// Whether the line starts with the marker `s` followed by a space or its end.
fn starts(chars: &[char], s: &str) -> bool {
    let n = s.chars().count();
    chars.len() >= n
        && chars.iter().zip(s.chars()).all(|(a, b)| *a == b)
        && chars.get(n).is_none_or(|c| *c == ' ')
}

/// The index of the first character at or after `at` that is not a space.
fn skip_spaces(chars: &[char], mut at: usize) -> usize {
    while at < chars.len() && chars[at] == ' ' {
        at += 1;
    }
    at
}

#[cfg(test)]
mod nesting_tests {
    use super::*;

    fn deep(n: usize) -> String {
        "[".repeat(n)
    }

    #[test]
    fn real_shapes_measure_their_depth() {
        let text = r#"a:
  b:
    - c: [1, {d: 2}]
      e: |
        [[[[ text
  f: "[[[" # [[[
"#;
        assert_eq!(deeper_than(text, 6), None);
        // a, b, the sequence, its mapping, the flow list and the flow mapping.
        assert_eq!(deeper_than(text, 5), Some(3));
    }

    #[test]
    fn text_that_only_looks_like_a_quote_hides_nothing() {
        let tail = format!(
            r#"b: {}
"#,
            deep(70)
        );
        for head in [
            // A quote inside a plain scalar's continuation line is text.
            r#"a: x
  'foo
"#,
            // A quote after an anchor is a quoted scalar, closed on the next line.
            r#"k: &a '
 '
"#,
            // A quote on a block scalar's content line is text.
            r#"a:
- |
  "open
"#,
            // An apostrophe inside a word is text.
            r#"a: don't
"#,
        ] {
            let text = format!("{head}{tail}");
            let lines = head.lines().count() + 1;
            assert_eq!(deeper_than(&text, 64), Some(lines), "{text:?}");
        }
    }

    #[test]
    fn closers_inside_quotes_do_not_close() {
        let text = format!(
            r#"a: {}
"#,
            "[ \"]]\", '}}', ".repeat(70)
        );
        assert_eq!(deeper_than(&text, 64), Some(1));
    }

    #[test]
    fn flow_collections_span_lines() {
        let text = format!(
            r#"a: [
{}
]
"#,
            deep(70)
        );
        assert_eq!(deeper_than(&text, 64), Some(2));
        assert_eq!(
            deeper_than(
                r#"a: [
  1,
  [2]
]
b: c
"#,
                3
            ),
            None
        );
    }

    #[test]
    fn compact_sequences_are_levels() {
        let text = format!("{}x\n", "- ".repeat(70));
        assert_eq!(deeper_than(&text, 64), Some(1));
    }
}
