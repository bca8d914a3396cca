//! Durations as people write them in a spec: `"90s"`, `"2h"`, `"1h 30m"`, or a number of
//! seconds.

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::time::Duration;

/// A duration in a spec file: a humantime string (`"90s"`, `"2h"`) or whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecDuration(pub Duration);

impl<'de> Deserialize<'de> for SpecDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        let raw = Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected a duration such as \"90s\", \"2h\", \"1h 30m\" or a number of seconds",
            )
        })?;
        let value = match raw {
            Raw::Secs(s) => Duration::from_secs(s),
            Raw::Text(t) => parse(&t).map_err(serde::de::Error::custom)?,
        };
        Ok(SpecDuration(value))
    }
}

/// Parses `"90s"`, `"2h"`, `"1h 30m"` or `"45"` (seconds).
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(t).map_err(|e| {
        format!(
            "invalid duration {text:?}: {}; expected e.g. \"90s\", \"2h\", \"1h 30m\" or a number of seconds",
            why(t, &e)
        )
    })
}

/// The units people write, for "did you mean" (humantime accepts more spellings).
const UNITS: &[&str] = &[
    "ms", "s", "sec", "secs", "second", "seconds", "m", "min", "mins", "minute", "minutes", "h",
    "hr", "hour", "hours", "d", "day", "days", "w", "week", "weeks",
];

/// The parser's complaint in a person's words (humantime says "expected number at 0").
fn why(text: &str, e: &humantime::DurationError) -> String {
    use humantime::DurationError as E;
    let at = |i: usize| text.get(i..).unwrap_or_default();
    match e {
        E::InvalidCharacter(i) => format!(
            "{:?} cannot be part of a duration",
            at(*i).chars().next().unwrap_or(' ')
        ),
        E::NumberExpected(i) => format!("a number is missing before {:?}", at(*i)),
        E::UnknownUnit { unit, .. } => match crate::suggest::nearest(unit, UNITS.iter().copied()) {
            Some(near) => format!("{unit:?} is not a unit (did you mean `{near}`?)"),
            None => format!("{unit:?} is not a unit (s, m, h, d, w)"),
        },
        E::NumberOverflow => "the number is too large".to_string(),
        E::Empty => "it is empty".to_string(),
    }
}

impl Serialize for SpecDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl JsonSchema for SpecDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration: \"90s\", \"2h\", \"1h 30m\", or a whole number of seconds.",
            "oneOf": [
                {"type": "string", "examples": ["90s", "2h", "1h 30m"]},
                {"type": "integer", "minimum": 0}
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(yaml: &str) -> Result<SpecDuration, String> {
        serde_yaml::from_str::<SpecDuration>(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn a_spec_gives_text_or_whole_seconds() {
        assert_eq!(read("90").unwrap().0, Duration::from_secs(90));
        assert_eq!(read("'1h 30m'").unwrap().0, Duration::from_secs(5400));
        assert_eq!(read("' 2m '").unwrap().0, Duration::from_secs(120));
        let e = read("-5").unwrap_err();
        assert!(e.contains("expected a duration such as"), "{e}");
        let e = read("[1]").unwrap_err();
        assert!(e.contains("expected a duration such as"), "{e}");
        let e = read("soon").unwrap_err();
        assert!(e.contains("invalid duration \"soon\""), "{e}");
        // In words, not the parser's "expected number at 0".
        let e = read("abc").unwrap_err();
        assert!(e.contains("a number is missing before \"abc\""), "{e}");
        let e = read("'2 hourz'").unwrap_err();
        assert!(
            e.contains("\"hourz\" is not a unit (did you mean `hour`?)"),
            "{e}"
        );
        let e = read("'2x'").unwrap_err();
        assert!(e.contains("\"x\" is not a unit (s, m, h, d, w)"), "{e}");
    }

    #[test]
    fn written_as_people_write_it_and_read_back() {
        let d = SpecDuration(Duration::from_secs(5400));
        let text = serde_yaml::to_string(&d).unwrap();
        assert_eq!(text.trim(), "1h 30m");
        assert_eq!(read(&text).unwrap(), d);
    }

    #[test]
    fn forms() {
        assert_eq!(parse("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("45").unwrap(), Duration::from_secs(45));
        assert!(parse("soon").is_err());
        assert!(parse("-3s").is_err());
    }
}
