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
            "invalid duration {text:?} ({e}); expected e.g. \"90s\", \"2h\", \"1h 30m\" or a number of seconds"
        )
    })
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
