//! Command-line options of `ringway-upstream`: the clap model, durations and fault modes.
//!
//! Invariant: an [`Options`] value is fully validated; the server never re-checks it.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;

/// `ringway-upstream`: an HTTP/1.1 test and fault upstream.
///
/// Special paths: /echo, /headers, /size/N, /status/N, /stream/N, /sha256, /__stats.
#[derive(Debug, Clone, Parser)]
#[command(name = "ringway-upstream", version, about, long_about = None)]
pub struct Options {
    /// Address to listen on (port 0 picks a free port). Prints `listening on IP:PORT`.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,

    /// Bytes of response body for ordinary requests (deterministic pattern, see `pattern_byte`).
    #[arg(long, default_value_t = 2)]
    pub body_size: u64,

    /// Respond with `Transfer-Encoding: chunked` instead of `Content-Length`.
    #[arg(long)]
    pub chunked: bool,

    /// Status code of ordinary responses.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u16).range(100..=999))]
    pub status: u16,

    /// Delay before each response head, e.g. `10ms`, `1s`.
    #[arg(long, value_parser = parse_duration, default_value = "0ms")]
    pub latency: Duration,

    /// Adds `x-upstream: NAME` to every response.
    #[arg(long)]
    pub name: Option<String>,

    /// Fault mode: refuse, reset-before-headers, reset-mid-body, hang, slow-drip,
    /// wrong-content-length, close-after=N, error-rate=PCT, bad-response.
    #[arg(long, default_value = "none")]
    pub fault: Fault,

    /// Interval between bytes in `--fault slow-drip`.
    #[arg(long, value_parser = parse_duration, default_value = "100ms")]
    pub drip_interval: Duration,

    /// Close a keep-alive connection idle this long (`0s` = never).
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub idle_timeout: Duration,

    /// Log connection errors to stderr.
    #[arg(long)]
    pub verbose: bool,
}

/// A global fault, applied to every request except `/__stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Do not listen at all: the printed port refuses connections.
    Refuse,
    /// Read the request, then reset the connection (SO_LINGER 0) without answering.
    ResetBeforeHeaders,
    /// Send the head and half of the body, then reset the connection.
    ResetMidBody,
    /// Read the request and never answer; the socket stays open until the peer closes it.
    Hang,
    /// Send the response one byte per `--drip-interval`.
    SlowDrip,
    /// Declare 10 more body bytes than are sent, then close.
    WrongContentLength,
    /// Close the connection after N responses on it, without `Connection: close`.
    CloseAfter(u64),
    /// Answer 503 to PCT% of requests, spread evenly by a global request counter.
    ErrorRate(u8),
    /// Send a malformed status line, then close.
    BadResponse,
}

/// Why a `--fault` value was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FaultParseError {
    #[error("unknown fault mode (see --help)")]
    Unknown,
    #[error("close-after=N needs N >= 1")]
    BadCloseAfter,
    #[error("error-rate=PCT needs PCT in 0..=100")]
    BadErrorRate,
}

impl FromStr for Fault {
    type Err = FaultParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(n) = s.strip_prefix("close-after=") {
            return match n.parse::<u64>() {
                Ok(n) if n >= 1 => Ok(Fault::CloseAfter(n)),
                _ => Err(FaultParseError::BadCloseAfter),
            };
        }
        if let Some(p) = s.strip_prefix("error-rate=") {
            return match p.trim_end_matches('%').parse::<u8>() {
                Ok(p) if p <= 100 => Ok(Fault::ErrorRate(p)),
                _ => Err(FaultParseError::BadErrorRate),
            };
        }
        Ok(match s {
            "none" => Fault::None,
            "refuse" => Fault::Refuse,
            "reset-before-headers" => Fault::ResetBeforeHeaders,
            "reset-mid-body" => Fault::ResetMidBody,
            "hang" => Fault::Hang,
            "slow-drip" => Fault::SlowDrip,
            "wrong-content-length" => Fault::WrongContentLength,
            "bad-response" => Fault::BadResponse,
            _ => return Err(FaultParseError::Unknown),
        })
    }
}

/// Why a duration string was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DurationParseError {
    #[error("expected a number with a unit: us, ms, s, m or h (e.g. 10ms)")]
    Invalid,
}

/// Parses `"250ms"`, `"5s"`, `"2m"`, `"1h"`, `"100us"` (the config file's duration syntax).
pub fn parse_duration(s: &str) -> Result<Duration, DurationParseError> {
    let s = s.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = s.split_at(digits);
    let n: u64 = num.parse().map_err(|_| DurationParseError::Invalid)?;
    let d = match unit {
        "us" => Duration::from_micros(n),
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(DurationParseError::Invalid),
    };
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations_with_units() {
        assert_eq!(parse_duration("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn parses_fault_modes() {
        assert_eq!("hang".parse(), Ok(Fault::Hang));
        assert_eq!("close-after=3".parse(), Ok(Fault::CloseAfter(3)));
        assert_eq!("error-rate=50".parse(), Ok(Fault::ErrorRate(50)));
        assert_eq!(
            "close-after=0".parse::<Fault>(),
            Err(FaultParseError::BadCloseAfter)
        );
        assert_eq!(
            "error-rate=101".parse::<Fault>(),
            Err(FaultParseError::BadErrorRate)
        );
        assert_eq!("nope".parse::<Fault>(), Err(FaultParseError::Unknown));
    }

    #[test]
    fn cli_defaults_match_the_documented_ones() {
        let o = Options::try_parse_from(["ringway-upstream"]).unwrap();
        assert_eq!(o.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(o.body_size, 2);
        assert_eq!(o.status, 200);
        assert_eq!(o.fault, Fault::None);
        assert_eq!(o.drip_interval, Duration::from_millis(100));
    }
}
