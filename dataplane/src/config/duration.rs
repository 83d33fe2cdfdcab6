//! Duration strings of the config file: a non-negative integer immediately followed by a unit,
//! `us`, `ms`, `s`, `m` or `h` (`"500us"`, `"250ms"`, `"5s"`, `"2m"`, `"1h"`).
//!
//! No fractions, signs, spaces or compound forms (`"1m30s"`): one spelling per value keeps
//! [`render`] exact, so `parse(render(d)) == d` for every duration `parse` accepts.
//! Bounds (zero allowed or not, maximum) are the validator's business, not this module's.

use std::time::Duration;

/// Why a duration string was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration; write a number with a unit, e.g. \"5s\"")]
    Empty,
    #[error("negative durations are not allowed")]
    Negative,
    #[error("missing unit; write e.g. \"5s\" (units: us, ms, s, m, h)")]
    MissingUnit,
    #[error("unknown unit; use one of us, ms, s, m, h (e.g. \"250ms\")")]
    UnknownUnit,
    #[error("not a duration; write a whole number with a unit, e.g. \"250ms\" or \"5s\"")]
    Malformed,
    #[error("duration is too large")]
    Overflow,
}

/// Microseconds in one of each unit, smallest first.
const UNITS: [(&str, u64); 5] = [
    ("us", 1),
    ("ms", 1_000),
    ("s", 1_000_000),
    ("m", 60_000_000),
    ("h", 3_600_000_000),
];

/// Parses `"<digits><unit>"`.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    if text.starts_with('-') {
        return Err(DurationError::Negative);
    }
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err(DurationError::Malformed);
    }
    if unit.is_empty() {
        return Err(DurationError::MissingUnit);
    }
    let per_unit = match UNITS.iter().find(|(name, _)| *name == unit) {
        Some((_, micros)) => *micros,
        None if unit.chars().all(|c| c.is_ascii_alphabetic()) => {
            return Err(DurationError::UnknownUnit)
        }
        None => return Err(DurationError::Malformed),
    };
    let value: u64 = digits.parse().map_err(|_| DurationError::Overflow)?;
    let micros = value.checked_mul(per_unit).ok_or(DurationError::Overflow)?;
    Ok(Duration::from_micros(micros))
}

/// The shortest exact spelling of `d` in the largest unit that divides it; sub-microsecond
/// remainders (never produced by [`parse`]) are truncated.
pub fn render(d: Duration) -> String {
    let micros = d.as_micros();
    if micros == 0 {
        return "0s".to_string();
    }
    for (name, per_unit) in UNITS.iter().rev() {
        let per_unit = u128::from(*per_unit);
        if micros % per_unit == 0 {
            return format!("{}{name}", micros / per_unit);
        }
    }
    format!("{micros}us")
}
