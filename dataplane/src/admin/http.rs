//! The admin server's HTTP/1.1 codec: parse one bounded request head, map it to an
//! [`Endpoint`] or an error [`Status`], and build a complete `Connection: close` response.
//!
//! Pure functions over byte slices; the socket loop lives in `admin::conn`. Nothing here can
//! panic on input: malformed heads are 400, too many or too large headers 431, methods other
//! than GET 405, unknown paths 404.

use std::fmt::Write;

/// Largest request head accepted, in bytes (request line plus headers plus blank line).
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// Most request headers accepted.
pub const MAX_HEADERS: usize = 32;

/// The statuses the admin server answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    HeaderFieldsTooLarge,
    ServiceUnavailable,
}

impl Status {
    /// The numeric code.
    pub const fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::RequestTimeout => 408,
            Status::HeaderFieldsTooLarge => 431,
            Status::ServiceUnavailable => 503,
        }
    }

    /// The reason phrase (RFC 9110 §15).
    pub const fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadRequest => "Bad Request",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::RequestTimeout => "Request Timeout",
            Status::HeaderFieldsTooLarge => "Request Header Fields Too Large",
            Status::ServiceUnavailable => "Service Unavailable",
        }
    }
}

/// What a well-formed GET asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Index,
    Ready,
    Metrics,
    Config,
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

/// Map a method and request-target to an endpoint. The query string is ignored.
pub fn route(method: &str, target: &str) -> Parsed {
    if method != "GET" {
        return Parsed::Reject(Status::MethodNotAllowed);
    }
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    match path {
        "/" => Parsed::Request(Endpoint::Index),
        "/ready" => Parsed::Request(Endpoint::Ready),
        "/metrics" => Parsed::Request(Endpoint::Metrics),
        "/config" => Parsed::Request(Endpoint::Config),
        _ => Parsed::Reject(Status::NotFound),
    }
}

/// `Content-Type` of plain-text admin bodies.
pub const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// The body of `GET /`.
pub const INDEX_BODY: &str = "ringway admin\n\
GET /         this index\n\
GET /ready    200 once every listener is bound, 503 while starting or draining\n\
GET /metrics  Prometheus text format 0.0.4\n\
GET /config   the active configuration (TOML)\n";

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
    if status == Status::MethodNotAllowed {
        head.push_str("Allow: GET\r\n");
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
