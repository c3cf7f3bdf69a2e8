//! Quantities as people write them: durations (`30s`, `250us`), sizes (`1KiB`, `60MB`),
//! fractions (`1%`) and load rates (`200`, `max`, `[500, 1000]`).
//!
//! Each type deserializes from the written form and serializes back to a canonical one, so a
//! resolved scenario in `run.json` reads like the file it came from.

use std::fmt;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A duration written with a unit: `30s`, `250us`, `1m30s`, `0s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Dur(pub Duration);

impl Dur {
    pub fn as_secs_f64(self) -> f64 {
        self.0.as_secs_f64()
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_zero() {
            return f.write_str("0s");
        }
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// Parses `30s`, `250us`, `1m 30s`. A bare number is refused: its unit would be a guess.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration; write it with a unit, e.g. `30s` or `250us`".into());
    }
    if t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(format!(
            "`{t}` has no unit; write it with one, e.g. `{t}s` or `{t}ms`"
        ));
    }
    humantime::parse_duration(t).map_err(|e| {
        format!("`{t}` is not a duration ({e}); write it like `30s`, `250us` or `1m30s`")
    })
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration with a unit, e.g. `30s` or `250us`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                parse_duration(v).map(Dur).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dur, E> {
                if v == 0 {
                    return Ok(Dur(Duration::ZERO));
                }
                Err(E::custom(format!(
                    "`{v}` has no unit; write it with one, e.g. `{v}s` or `{v}ms`"
                )))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
                self.visit_u64(
                    u64::try_from(v).map_err(|_| E::custom("a duration cannot be negative"))?,
                )
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Dur, E> {
                Err(E::custom(format!(
                    "`{v}` has no unit; write it with one, e.g. `{v}s` or `{v}ms`"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Dur {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A duration with a unit, e.g. `30s`, `250us`, `1m30s`.",
            "pattern": "^\\s*([0-9]+(\\.[0-9]+)?\\s*[a-zA-Zµ]+\\s*)+$"
        })
    }
}

/// A size in bytes: `1KiB`, `64`, `60MB`, `1.5MiB`. Decimal units (kB, MB, GB) are powers of
/// 1000, binary ones (KiB, MiB, GiB) powers of 1024, as in Kubernetes quantities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Size(pub u64);

pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim();
    let value: f64 = num.parse().map_err(|_| {
        format!("`{t}` is not a size; write it like `1KiB`, `512`, `60MB` or `1.5MiB`")
    })?;
    let mult: u64 = match unit {
        "" | "B" => 1,
        "k" | "kB" | "KB" | "K" => 1000,
        "Ki" | "KiB" => 1024,
        "M" | "MB" => 1000 * 1000,
        "Mi" | "MiB" => 1024 * 1024,
        "G" | "GB" => 1000 * 1000 * 1000,
        "Gi" | "GiB" => 1024 * 1024 * 1024,
        other => {
            return Err(format!(
                "`{other}` is not a size unit; use B, kB, KiB, MB, MiB, GB or GiB"
            ));
        }
    };
    let bytes = value * mult as f64;
    if bytes.fract() != 0.0 {
        return Err(format!("`{t}` is not a whole number of bytes"));
    }
    if bytes > u64::MAX as f64 / 2.0 {
        return Err(format!("`{t}` is too large"));
    }
    Ok(bytes as u64)
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        const KI: u64 = 1024;
        if b != 0 && b.is_multiple_of(KI * KI * KI) {
            write!(f, "{}GiB", b / (KI * KI * KI))
        } else if b != 0 && b.is_multiple_of(KI * KI) {
            write!(f, "{}MiB", b / (KI * KI))
        } else if b != 0 && b.is_multiple_of(KI) {
            write!(f, "{}KiB", b / KI)
        } else if b != 0 && b.is_multiple_of(1_000_000) {
            write!(f, "{}MB", b / 1_000_000)
        } else if b != 0 && b.is_multiple_of(1000) {
            write!(f, "{}kB", b / 1000)
        } else {
            write!(f, "{b}B")
        }
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size, e.g. `1KiB`, `512` or `60MB`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                parse_size(v).map(Size).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Size {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Size".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A size in bytes: a number, or a number with a unit (B, kB, KiB, MB, MiB, GB, GiB), e.g. `1KiB`.",
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": "^\\s*[0-9]+(\\.[0-9]+)?\\s*(B|k|kB|KB|K|Ki|KiB|M|MB|Mi|MiB|G|GB|Gi|GiB)?\\s*$"}
            ]
        })
    }
}

/// A link's bandwidth in bits per second, written as tc writes it: `10Mbit`, `500kbit`,
/// `1Gbit` (decimal multiples, bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bandwidth(pub u64);

pub fn parse_bandwidth(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || format!("`{t}` is not a bandwidth; write it like `10Mbit`, `500kbit` or `1Gbit`");
    let value: f64 = num.parse().map_err(|_| bad())?;
    let mult = match unit.trim() {
        "bit" => 1.0,
        "kbit" => 1e3,
        "Mbit" => 1e6,
        "Gbit" => 1e9,
        _ => return Err(bad()),
    };
    let bits = value * mult;
    if !(8_000.0..=100e9).contains(&bits) {
        return Err(format!("`{t}` is outside 8kbit to 100Gbit"));
    }
    Ok(bits as u64)
}

impl fmt::Display for Bandwidth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b.is_multiple_of(1_000_000_000) {
            write!(f, "{}Gbit", b / 1_000_000_000)
        } else if b.is_multiple_of(1_000_000) {
            write!(f, "{}Mbit", b / 1_000_000)
        } else if b.is_multiple_of(1000) {
            write!(f, "{}kbit", b / 1000)
        } else {
            write!(f, "{b}bit")
        }
    }
}

impl Serialize for Bandwidth {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Bandwidth {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_bandwidth(&s)
            .map(Bandwidth)
            .map_err(de::Error::custom)
    }
}

impl JsonSchema for Bandwidth {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Bandwidth".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A bandwidth in bits per second, as tc writes it: `10Mbit`, `500kbit`, `1Gbit`.",
            "type": "string",
            "pattern": "^\\s*[0-9]+(\\.[0-9]+)?(bit|kbit|Mbit|Gbit)\\s*$"
        })
    }
}

/// A fraction written as a percentage (`1%`, `0.5%`) or a number between 0 and 1.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Fraction(pub f64);

impl fmt::Display for Fraction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0 * 100.0)
    }
}

impl Serialize for Fraction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Fraction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Fraction;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a percentage like `1%`, or a number between 0 and 1")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Fraction, E> {
                let t = v.trim();
                let Some(num) = t.strip_suffix('%') else {
                    return Err(E::custom(format!(
                        "`{t}` is not a percentage; write it like `1%` or `0.5%`"
                    )));
                };
                let p: f64 = num.trim().parse().map_err(|_| {
                    E::custom(format!("`{t}` is not a percentage; write it like `1%`"))
                })?;
                self.visit_f64(p / 100.0)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Fraction, E> {
                if !(0.0..=1.0).contains(&v) {
                    return Err(E::custom(format!(
                        "`{v}` is outside 0..1; write a percentage like `1%`"
                    )));
                }
                Ok(Fraction(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Fraction, E> {
                self.visit_f64(v as f64)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Fraction, E> {
                self.visit_f64(v as f64)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Fraction {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Fraction".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A percentage like `1%`, or a number between 0 and 1.",
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": 1},
                {"type": "string", "pattern": "^\\s*[0-9]+(\\.[0-9]+)?\\s*%\\s*$"}
            ]
        })
    }
}

/// The load a flow offers: a fixed rate, a list of rate steps, or `max` (closed loop).
#[derive(Debug, Clone, PartialEq)]
pub enum Rate {
    /// Open loop at this many requests (or round trips) per second.
    Fixed(f64),
    /// Open loop at each rate in turn, each step with its own warmup and result.
    Steps(Vec<f64>),
    /// Closed loop: every connection sends back to back, for saturation throughput.
    Max,
    /// Open loop, searching for the highest rate that meets the flow's SLOs: steps from
    /// `start`, doubled until one fails, then bisected (`rate: search` starts at 100).
    Search { start: f64 },
}

/// Where `rate: search` starts, requests per second.
pub const SEARCH_START_RPS: f64 = 100.0;

impl Rate {
    /// The rates of the open-loop steps (empty for `max`).
    pub fn steps(&self) -> Vec<f64> {
        match self {
            Rate::Fixed(r) => vec![*r],
            Rate::Steps(s) => s.clone(),
            Rate::Max => Vec::new(),
            Rate::Search { start } => vec![*start],
        }
    }

    pub fn is_search(&self) -> bool {
        matches!(self, Rate::Search { .. })
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Rate::Fixed(r) => s.serialize_f64(*r),
            Rate::Steps(v) => v.serialize(s),
            Rate::Max => s.serialize_str("max"),
            Rate::Search { start } if *start == SEARCH_START_RPS => s.serialize_str("search"),
            Rate::Search { start } => s.serialize_str(&format!("search from {start}")),
        }
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Rate;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a rate per second (`200`), a list of rate steps (`[500, 1000]`), `max` or `search`",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Rate, E> {
                match v.trim() {
                    "max" => Ok(Rate::Max),
                    "search" => Ok(Rate::Search {
                        start: SEARCH_START_RPS,
                    }),
                    t => match t
                        .strip_prefix("search from ")
                        .map(|n| n.trim().parse::<f64>())
                    {
                        Some(Ok(start)) => Ok(Rate::Search { start }),
                        _ => Err(E::custom(format!(
                            "`{t}` is not a rate; write a number per second (`200`), a list of steps (`[500, 1000]`), `max`, or `search` (`search from 500`)"
                        ))),
                    },
                }
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Rate, E> {
                Ok(Rate::Fixed(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Rate, E> {
                Ok(Rate::Fixed(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Rate, E> {
                Ok(Rate::Fixed(v as f64))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Rate, A::Error> {
                let mut steps = Vec::new();
                while let Some(r) = seq.next_element::<f64>()? {
                    steps.push(r);
                }
                Ok(Rate::Steps(steps))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Rate {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Rate".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Requests per second (open loop), a list of rate steps, `max` (closed loop), or `search` (the highest rate meeting the flow's SLOs; `search from 500` starts there).",
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0}, "minItems": 1},
                {"const": "max"},
                {"type": "string", "pattern": "^search( from [0-9]+(\\.[0-9]+)?)?$"}
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_units() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        let e = parse_duration("30").unwrap_err();
        assert!(e.contains("no unit"), "{e}");
        assert!(parse_duration("fast").is_err());
        assert_eq!(Dur(Duration::from_micros(250)).to_string(), "250us");
        assert_eq!(Dur(Duration::ZERO).to_string(), "0s");
    }

    #[test]
    fn bandwidths_read_as_tc_writes_them() {
        assert_eq!(parse_bandwidth("10Mbit"), Ok(10_000_000));
        assert_eq!(parse_bandwidth("1.5Gbit"), Ok(1_500_000_000));
        assert_eq!(Bandwidth(500_000).to_string(), "500kbit");
        assert!(
            parse_bandwidth("10MB")
                .unwrap_err()
                .contains("`10MB` is not a bandwidth")
        );
        assert!(parse_bandwidth("1kbit").unwrap_err().contains("outside"));
    }

    #[test]
    fn sizes_read_binary_and_decimal_units() {
        assert_eq!(parse_size("1KiB").unwrap(), 1024);
        assert_eq!(parse_size("60MB").unwrap(), 60_000_000);
        assert_eq!(parse_size("1.5MiB").unwrap(), 1024 * 1024 * 3 / 2);
        assert_eq!(parse_size("512").unwrap(), 512);
        assert!(parse_size("1KB2").is_err());
        assert!(parse_size("1Kb").is_err());
        assert_eq!(Size(1024).to_string(), "1KiB");
        assert_eq!(Size(60_000_000).to_string(), "60MB");
        assert_eq!(Size(100).to_string(), "100B");
    }
}
