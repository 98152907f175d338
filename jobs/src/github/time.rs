//! GitHub's timestamps: RFC 3339 strings almost everywhere, Unix seconds in some payloads
//! (`push`'s repository, installations). Both parse to UTC.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, de::Error};

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Text(String),
    Seconds(i64),
}

fn convert<E: Error>(raw: Raw) -> Result<DateTime<Utc>, E> {
    match raw {
        Raw::Text(text) => DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| E::custom(format!("invalid timestamp {text:?}: {e}"))),
        Raw::Seconds(secs) => DateTime::from_timestamp(secs, 0)
            .ok_or_else(|| E::custom(format!("timestamp out of range: {secs}"))),
    }
}

pub fn deserialize_time<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    convert(Raw::deserialize(d)?)
}

pub fn deserialize_opt_time<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    Option::<Raw>::deserialize(d)?.map(convert).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct T {
        #[serde(deserialize_with = "deserialize_time")]
        at: DateTime<Utc>,
        #[serde(default, deserialize_with = "deserialize_opt_time")]
        maybe: Option<DateTime<Utc>>,
    }

    #[test]
    fn strings_and_unix_seconds_mean_the_same_instant() {
        let a: T = serde_json::from_str(r#"{"at":"2019-05-15T15:20:57Z"}"#).expect("string");
        let b: T = serde_json::from_str(r#"{"at":1557933657,"maybe":null}"#).expect("seconds");
        assert_eq!(a.at, b.at);
        assert_eq!(a.maybe, None);
        assert!(serde_json::from_str::<T>(r#"{"at":"yesterday"}"#).is_err());
    }
}
