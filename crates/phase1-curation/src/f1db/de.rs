//! Value types and serde helpers for F1DB's YAML: calendar dates, fields that hold either a
//! number or a status text (`position: 1` / `position: DNF`), and lap-time strings turned into
//! milliseconds the way F1DB's own JSON/SQL exports do (`timeMillis`, `gapMillis`, `gapLaps`).

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A calendar date as F1DB writes it (`YYYY-MM-DD`, no time zone).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    /// Year, e.g. 1985.
    pub year: u16,
    /// Month, 1–12.
    pub month: u8,
    /// Day of the month, 1–31 (checked against the month, leap years included).
    pub day: u8,
}

impl Date {
    /// Days in `month` of `year` (proleptic Gregorian calendar).
    fn days_in_month(year: u16, month: u8) -> u8 {
        match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => 29,
            2 => 28,
            _ => 0,
        }
    }
}

impl FromStr for Date {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not a date YYYY-MM-DD");
        let mut parts = s.split('-');
        let (Some(y), Some(m), Some(d), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        if y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return Err(bad());
        }
        let year: u16 = y.parse().map_err(|_| bad())?;
        let month: u8 = m.parse().map_err(|_| bad())?;
        let day: u8 = d.parse().map_err(|_| bad())?;
        if day == 0 || day > Self::days_in_month(year, month) {
            return Err(bad());
        }
        Ok(Date { year, month, day })
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct DateVisitor;
        impl Visitor<'_> for DateVisitor {
            type Value = Date;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a date YYYY-MM-DD")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Date, E> {
                v.parse().map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_str(DateVisitor)
    }
}

/// A scalar kept as text whether YAML wrote it as a string or an integer: F1DB's `position`
/// is `1` or `DNF`, `gridPenalty` is `5` or `SFB`, and `driverNumber` is an integer in the YAML
/// but a string in F1DB's published schema.
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl Visitor<'_> for TextVisitor {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text, E> {
                Ok(Text(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        d.deserialize_any(TextVisitor)
    }
}

/// `deserialize_with` for a required number-or-text field.
pub(crate) fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Text::deserialize(d).map(|t| t.0)
}

/// `deserialize_with` for an optional number-or-text field (`key:` with no value is `None`).
pub(crate) fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<Text>::deserialize(d).map(|t| t.map(|t| t.0))
}

/// `deserialize_with` for a list that F1DB writes as `key:` (null) when empty.
pub(crate) fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<Vec<T>>::deserialize(d).map(Option::unwrap_or_default)
}

/// Milliseconds of a duration written `H:MM:SS.mmm`, `M:SS.mmm` or `SS.mmm` (a leading `+`
/// allowed, as in gaps). `None` for anything else, e.g. `+1 lap`.
pub fn duration_millis(s: &str) -> Option<u64> {
    let s = s.trim();
    let s = s.strip_prefix('+').unwrap_or(s);
    let mut parts = s.rsplit(':');
    let seconds = parts.next()?;
    let (whole, frac) = seconds.split_once('.').unwrap_or((seconds, ""));
    if whole.is_empty() || frac.len() > 3 || !whole.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    // ".5" is 500 ms, ".25" is 250 ms: pad the fraction to three digits.
    let frac_ms = if frac.is_empty() { 0 } else { frac.parse::<u64>().ok()? * 10u64.pow(3 - frac.len() as u32) };
    let mut millis = whole.parse::<u64>().ok()? * 1000 + frac_ms;
    for (unit, part) in [60_000u64, 3_600_000].into_iter().zip(parts.by_ref()) {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        millis += part.parse::<u64>().ok()? * unit;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(millis)
}

/// Signed milliseconds of a gap or interval (`+2.256`, `-0.123`, `+1:02.500`). `None` for lap
/// gaps (`+1 lap`) and anything unparseable.
pub fn signed_millis(s: &str) -> Option<i64> {
    let s = s.trim();
    match s.strip_prefix('-') {
        Some(rest) => duration_millis(rest).and_then(|m| i64::try_from(m).ok()).map(|m| -m),
        None => duration_millis(s).and_then(|m| i64::try_from(m).ok()),
    }
}

/// Laps of a lap gap (`+1 lap`, `+12 laps`); `None` for time gaps.
pub fn gap_laps(s: &str) -> Option<u32> {
    let s = s.trim();
    let s = s.strip_prefix('+').unwrap_or(s);
    let n = s.strip_suffix(" laps").or_else(|| s.strip_suffix(" lap"))?;
    n.trim().parse().ok()
}

/// A finishing or grid position's number, if the text is one (`"3"` → 3, `"DNF"` → `None`).
pub(crate) fn position_number(text: &str) -> Option<u32> {
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_millis("1:30:17.345"), Some(5_417_345));
        assert_eq!(duration_millis("1:26.103"), Some(86_103));
        assert_eq!(duration_millis("22.124"), Some(22_124));
        assert_eq!(duration_millis("+2.256"), Some(2_256));
        assert_eq!(duration_millis("+0.25"), Some(250));
        assert_eq!(duration_millis("1:02:5.123"), Some(3_725_123));
        assert_eq!(duration_millis("+1 lap"), None);
        assert_eq!(duration_millis(""), None);
        assert_eq!(duration_millis("1:2:3:4.000"), None);
        assert_eq!(signed_millis("-0.123"), Some(-123));
        assert_eq!(signed_millis("+1:02.500"), Some(62_500));
        assert_eq!(gap_laps("+1 lap"), Some(1));
        assert_eq!(gap_laps("+12 laps"), Some(12));
        assert_eq!(gap_laps("+2.256"), None);
    }

    #[test]
    fn dates() {
        let d: Date = "1985-01-07".parse().expect("valid date");
        assert_eq!((d.year, d.month, d.day), (1985, 1, 7));
        assert_eq!(d.to_string(), "1985-01-07");
        assert!("2023-02-29".parse::<Date>().is_err());
        assert!("2024-02-29".parse::<Date>().is_ok());
        assert!("1985-1-7".parse::<Date>().is_err());
        assert!("1985".parse::<Date>().is_err());
    }
}
