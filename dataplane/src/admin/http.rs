//! The admin server's HTTP/1.1 codec: parse one bounded request head, map it to an
//! [`Endpoint`] or an error [`Status`], and build a complete `Connection: close` response.
//!
//! Pure functions over byte slices; the socket loop lives in `admin::conn`. Nothing here can
//! panic on input: malformed heads and bad query parameters are 400, too many or too large
//! headers 431, a method the endpoint does not take 405 (with `Allow`), unknown paths 404.

use std::fmt::Write;

/// Largest request head accepted, in bytes (request line plus headers plus blank line).
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// Most request headers accepted.
pub const MAX_HEADERS: usize = 32;

/// The statuses the admin server answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    Accepted,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    /// 405 for an endpoint that takes only POST.
    PostOnly,
    RequestTimeout,
    HeaderFieldsTooLarge,
    ServiceUnavailable,
}

impl Status {
    /// The numeric code.
    pub const fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::Accepted => 202,
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::MethodNotAllowed | Status::PostOnly => 405,
            Status::RequestTimeout => 408,
            Status::HeaderFieldsTooLarge => 431,
            Status::ServiceUnavailable => 503,
        }
    }

    /// The reason phrase (RFC 9110 §15).
    pub const fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Accepted => "Accepted",
            Status::BadRequest => "Bad Request",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed | Status::PostOnly => "Method Not Allowed",
            Status::RequestTimeout => "Request Timeout",
            Status::HeaderFieldsTooLarge => "Request Header Fields Too Large",
            Status::ServiceUnavailable => "Service Unavailable",
        }
    }
}

/// `?format=` of `/clusters` and `/stats`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// `?level=` of `POST /logging`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub const fn as_str(self) -> &'static str {
        match self {
            LogLevel::Off => "off",
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }

    fn parse(s: &str) -> Option<LogLevel> {
        [
            LogLevel::Off,
            LogLevel::Error,
            LogLevel::Warn,
            LogLevel::Info,
            LogLevel::Debug,
            LogLevel::Trace,
        ]
        .into_iter()
        .find(|l| l.as_str().eq_ignore_ascii_case(s))
    }
}

/// What a well-formed request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /`: the live dashboard (HTML).
    Dashboard,
    /// `GET /help`: the endpoint list (text).
    Index,
    Ready,
    Metrics,
    Config,
    Clusters(Format),
    Stats(Format),
    Certs,
    /// `GET /logging`: the current filter.
    Logging,
    /// `POST /logging?level=`.
    SetLogging(LogLevel),
    /// `POST /reload`: re-read the config file, as SIGHUP does.
    Reload,
}

/// The outcome of parsing what has been read so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The head is not complete yet; read more.
    Partial,
    /// A complete head for this endpoint.
    Request(Endpoint),
    /// A complete (or hopeless) head answered with this error status.
    Reject(Status),
}

/// Parse the request head at the start of `buf`.
///
/// `buf` longer than [`MAX_HEAD_BYTES`] without a complete head is rejected with 431.
pub fn parse_head(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => {
            Parsed::Reject(Status::HeaderFieldsTooLarge)
        }
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Ok(httparse::Status::Complete(len)) if len > MAX_HEAD_BYTES => {
            Parsed::Reject(Status::HeaderFieldsTooLarge)
        }
        Ok(httparse::Status::Complete(_)) => match (req.method, req.path) {
            (Some(method), Some(path)) => route(method, path),
            _ => Parsed::Reject(Status::BadRequest),
        },
        Err(httparse::Error::TooManyHeaders) => Parsed::Reject(Status::HeaderFieldsTooLarge),
        Err(_) => Parsed::Reject(Status::BadRequest),
    }
}

/// The value of query parameter `name` in `query` (`a=1&b=2`), if present.
fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn format_of(query: &str) -> Result<Format, Status> {
    match param(query, "format") {
        None | Some("text") => Ok(Format::Text),
        Some("json") => Ok(Format::Json),
        Some(_) => Err(Status::BadRequest),
    }
}

/// Map a method and request-target to an endpoint.
pub fn route(method: &str, target: &str) -> Parsed {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let post_only = matches!(path, "/reload") || (path == "/logging" && method == "POST");
    if post_only {
        if method != "POST" {
            return Parsed::Reject(Status::PostOnly);
        }
        return match path {
            "/reload" => Parsed::Request(Endpoint::Reload),
            _ => match param(query, "level").and_then(LogLevel::parse) {
                Some(l) => Parsed::Request(Endpoint::SetLogging(l)),
                None => Parsed::Reject(Status::BadRequest),
            },
        };
    }
    if method != "GET" {
        return Parsed::Reject(Status::MethodNotAllowed);
    }
    let endpoint = match path {
        "/" => Endpoint::Dashboard,
        "/help" => Endpoint::Index,
        "/ready" => Endpoint::Ready,
        "/metrics" => Endpoint::Metrics,
        "/config" => Endpoint::Config,
        "/certs" => Endpoint::Certs,
        "/logging" if param(query, "level").is_some() => return Parsed::Reject(Status::PostOnly),
        "/logging" => Endpoint::Logging,
        "/clusters" => match format_of(query) {
            Ok(f) => Endpoint::Clusters(f),
            Err(s) => return Parsed::Reject(s),
        },
        "/stats" => match format_of(query) {
            Ok(f) => Endpoint::Stats(f),
            Err(s) => return Parsed::Reject(s),
        },
        _ => return Parsed::Reject(Status::NotFound),
    };
    Parsed::Request(endpoint)
}

/// `Content-Type` of plain-text admin bodies.
pub const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// `Content-Type` of JSON admin bodies.
pub const APPLICATION_JSON: &str = "application/json";
/// `Content-Type` of the dashboard.
pub const TEXT_HTML: &str = "text/html; charset=utf-8";

/// The body of `GET /help`.
pub const INDEX_BODY: &str = "ringway admin\n\
GET  /                 live dashboard (HTML, polls /stats and /clusters)\n\
GET  /help             this index\n\
GET  /ready            200 once every listener is bound, 503 while starting or draining\n\
GET  /metrics          Prometheus text format 0.0.4\n\
GET  /stats            every metric as `name{labels}: value` (?format=json)\n\
GET  /clusters         every endpoint: health, ejection, in flight, idle, requests (?format=json)\n\
GET  /certs            loaded certificates and their expiry (JSON)\n\
GET  /config           the active configuration (TOML)\n\
GET  /logging          the log filter\n\
POST /logging?level=L  set the log level (off, error, warn, info, debug, trace)\n\
POST /reload           re-read the config file, as SIGHUP does\n";

/// A complete response: status line, `Content-Type`, `Content-Length`, `Connection: close`
/// (plus `Allow: GET` on 405), blank line, body.
pub fn response(status: Status, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut head = String::with_capacity(160);
    let _ = write!(
        head,
        "HTTP/1.1 {} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n",
        status.code(),
        status.reason(),
        body.len()
    );
    match status {
        Status::MethodNotAllowed => head.push_str("Allow: GET\r\n"),
        Status::PostOnly => head.push_str("Allow: POST\r\n"),
        _ => {}
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// A plain-text error response whose body is the reason phrase.
pub fn error_response(status: Status) -> Vec<u8> {
    let mut body = String::with_capacity(40);
    body.push_str(status.reason());
    body.push('\n');
    response(status, TEXT_PLAIN, body.as_bytes())
}
