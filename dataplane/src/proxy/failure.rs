//! [`Failure`]: why an upstream exchange did not complete, and the one table that maps it to
//! the status the proxy answers, the metrics kind and the body of the answer.
//!
//! Where each is produced: [`Failure::NoEndpoint`] and [`Failure::Overloaded`] before any
//! connection (pick, circuit breaker); [`Failure::Connect`] / [`Failure::ConnectTimeout`] while
//! connecting; [`Failure::UpstreamReset`], [`Failure::Timeout`], [`Failure::BadResponse`]
//! before a response head was forwarded; [`Failure::AfterResponseStarted`] and
//! [`Failure::Downstream`] once it was (nothing can be answered any more: the client
//! connection closes); [`Failure::BadRequestBody`] / [`Failure::BodyTooLarge`] for the client's
//! body.

use std::io;

use crate::cluster::breaker::Overload;
use crate::telemetry::ErrorKind;
use crate::upstream::ConnectError;

/// Why an exchange failed.
#[derive(Debug)]
pub enum Failure {
    NoEndpoint,
    Connect(io::Error),
    ConnectTimeout,
    /// The upstream closed or reset before a complete response head.
    UpstreamReset,
    BadResponse,
    /// No upstream progress for the idle timeout, or the route's or a try's timeout fired.
    Timeout,
    /// The response had started; the only option left is closing the client connection.
    AfterResponseStarted,
    /// The client went away, stopped reading, or sent a broken body after the response began.
    Downstream,
    BadRequestBody,
    BodyTooLarge,
    /// A circuit breaker limit (its config key).
    Overloaded(&'static str),
    /// The original destination of an intercepted connection is this proxy.
    RedirectLoop,
    /// No progress on a body (either direction) for the stream idle timeout.
    StreamIdle,
    /// The client's request body stalled for the stream idle timeout.
    RequestBodyStalled,
}

impl Failure {
    /// (status to answer, or 0 for none; metrics kind).
    pub fn status(&self) -> (u16, ErrorKind) {
        match self {
            Failure::NoEndpoint => (503, ErrorKind::NoHealthyEndpoint),
            Failure::Connect(_) => (502, ErrorKind::UpstreamConnect),
            Failure::ConnectTimeout => (504, ErrorKind::UpstreamConnect),
            Failure::UpstreamReset => (502, ErrorKind::UpstreamReset),
            Failure::BadResponse => (502, ErrorKind::BadResponse),
            Failure::Timeout => (504, ErrorKind::UpstreamTimeout),
            Failure::AfterResponseStarted => (0, ErrorKind::UpstreamReset),
            Failure::Downstream => (0, ErrorKind::DownstreamReset),
            Failure::BadRequestBody => (400, ErrorKind::BadRequest),
            Failure::BodyTooLarge => (413, ErrorKind::BadRequest),
            Failure::Overloaded(_) => (503, ErrorKind::Overloaded),
            Failure::RedirectLoop => (508, ErrorKind::RedirectLoop),
            Failure::StreamIdle => (504, ErrorKind::StreamIdleTimeout),
            Failure::RequestBodyStalled => (408, ErrorKind::StreamIdleTimeout),
        }
    }

    pub fn body(&self) -> &'static [u8] {
        match self {
            Failure::NoEndpoint => b"no healthy upstream\n",
            Failure::Connect(_) => b"upstream connect error\n",
            Failure::ConnectTimeout => b"upstream connect timeout\n",
            Failure::UpstreamReset => b"upstream closed the connection\n",
            Failure::BadResponse => b"upstream sent a malformed response\n",
            Failure::Timeout => b"upstream timeout\n",
            Failure::BadRequestBody => b"malformed request body\n",
            Failure::BodyTooLarge => b"request body too large\n",
            Failure::Overloaded(_) => b"upstream overloaded (circuit breaker)\n",
            Failure::RedirectLoop => b"redirect loop: the original destination is this proxy\n",
            Failure::StreamIdle => b"upstream stream idle timeout\n",
            Failure::RequestBodyStalled => b"request body not received in time\n",
            Failure::AfterResponseStarted | Failure::Downstream => b"",
        }
    }

    /// Whether the client's request is still whole in its buffer, as far as this failure goes:
    /// false for failures of the client's own body (the connection must close).
    pub fn leaves_request_intact(&self) -> bool {
        !matches!(
            self,
            Failure::BadRequestBody
                | Failure::BodyTooLarge
                | Failure::RequestBodyStalled
                | Failure::Downstream
                | Failure::AfterResponseStarted
        )
    }

    /// Extra header of the error response (the breaker limit that refused the request).
    pub fn header(&self) -> Option<(&'static str, &'static str)> {
        match self {
            Failure::Overloaded(which) => Some(("x-ringway-overloaded", which)),
            _ => None,
        }
    }
}

impl From<Overload> for Failure {
    fn from(o: Overload) -> Failure {
        Failure::Overloaded(o.which)
    }
}

impl From<ConnectError> for Failure {
    fn from(e: ConnectError) -> Failure {
        match e {
            ConnectError::Refused(e) => Failure::Connect(e),
            ConnectError::Timeout => Failure::ConnectTimeout,
            ConnectError::Overloaded(o) => o.into(),
        }
    }
}
