//! Where each field of a YAML document sits: a map from field path (`inputs.train.mode`,
//! `command[0]`) to line and column, so that every validation error can point at the
//! text a person has to edit.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// Field path → location of its key (or of the item, in a sequence).
#[derive(Debug, Default)]
pub struct Index {
    places: HashMap<String, Location>,
}

impl Index {
    /// Indexes `text`; a document that does not parse gives an empty index (the YAML
    /// error itself is reported by the parser that reads the values).
    pub fn of(text: &str) -> Index {
        let mut b = Builder::default();
        let _ = Parser::new_from_str(text).load(&mut b, false);
        Index { places: b.places }
    }

    /// The location of `path`, or of its nearest ancestor that has one.
    pub fn find(&self, path: &str) -> Option<Location> {
        let mut p = path;
        loop {
            if let Some(l) = self.places.get(p) {
                return Some(*l);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

enum Frame {
    Map { key: Option<String> },
    Seq { next: usize },
}

#[derive(Default)]
struct Builder {
    stack: Vec<(Frame, String)>,
    places: HashMap<String, Location>,
}

impl Builder {
    /// Called for every node; returns the path of a value node, or None for a key.
    fn node(&mut self, key_text: Option<&str>, mark: Marker) -> Option<String> {
        let loc = Location {
            line: mark.line(),
            column: mark.col() + 1,
        };
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some((Frame::Map { key }, base)) => match key.take() {
                None => {
                    let k = key_text.unwrap_or("?").to_string();
                    let path = if base.is_empty() {
                        k.clone()
                    } else {
                        format!("{base}.{k}")
                    };
                    self.places.entry(path).or_insert(loc);
                    *key = Some(k);
                    None
                }
                Some(k) => Some(if base.is_empty() {
                    k
                } else {
                    format!("{base}.{k}")
                }),
            },
            Some((Frame::Seq { next }, base)) => {
                let path = format!("{base}[{next}]");
                *next += 1;
                self.places.entry(path.clone()).or_insert(loc);
                Some(path)
            }
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(text, ..) => {
                self.node(Some(&text), mark);
            }
            Event::Alias(_) => {
                self.node(None, mark);
            }
            Event::MappingStart(..) => {
                let path = self.node(None, mark).unwrap_or_default();
                self.stack.push((Frame::Map { key: None }, path));
            }
            Event::SequenceStart(..) => {
                let path = self.node(None, mark).unwrap_or_default();
                self.stack.push((Frame::Seq { next: 0 }, path));
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_keys_and_items() {
        let text = "name: x\ncommand: [sh, -c]\ninputs:\n  train:\n    mode: mnt\n";
        let ix = Index::of(text);
        assert_eq!(ix.find("name"), Some(Location { line: 1, column: 1 }));
        assert_eq!(
            ix.find("command[1]"),
            Some(Location {
                line: 2,
                column: 15
            })
        );
        assert_eq!(
            ix.find("inputs.train.mode"),
            Some(Location { line: 5, column: 5 })
        );
        // An unknown child falls back to its parent.
        assert_eq!(
            ix.find("inputs.train.bogus"),
            Some(Location { line: 4, column: 3 })
        );
    }
}
