use super::*;
use crate::http::{parse_request_head, HeadLimits, Parsed};

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn head(extra: &str) -> (RequestHead, Vec<u8>) {
    let buf = format!("GET / HTTP/1.1\r\nhost: a\r\n{extra}\r\n").into_bytes();
    let mut h = RequestHead::default();
    let r = parse_request_head(&buf, &HeadLimits::default(), &mut h).unwrap();
    assert!(matches!(r, Parsed::Complete(_)));
    (h, buf)
}

#[test]
fn traceparent_grammar() {
    assert!(matches!(
        parse_traceparent(TP.as_bytes()),
        Parent::Valid { sampled: true, .. }
    ));
    let bad = [
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ];
    for b in bad {
        assert_eq!(parse_traceparent(b.as_bytes()), Parent::Malformed, "{b}");
    }
    // A later version may append fields.
    let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what";
    assert!(matches!(
        parse_traceparent(future.as_bytes()),
        Parent::Valid { sampled: false, .. }
    ));
}

#[test]
fn valid_parent_keeps_trace_and_gets_new_span() {
    let (h, buf) = head(&format!("traceparent: {TP}\r\ntracestate: a=b\r\n"));
    let mut rng = FastRng::new(7);
    let t = of_request(TraceContext::Propagate, &h, &buf, &mut rng).unwrap();
    assert_eq!(&t.trace_id, b"4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(t.parent_str(), Some("00f067aa0ba902b7"));
    assert_ne!(t.span_str(), "00f067aa0ba902b7");
    assert!(t.w3c && !t.b3 && !t.drop_tracestate);
    assert_eq!(t.replaced().collect::<Vec<_>>(), [TRACEPARENT]);
    let mut out = [0u8; 55];
    let tp = t.traceparent(&mut out).to_string();
    assert!(
        tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{tp}"
    );
    assert!(matches!(
        parse_traceparent(tp.as_bytes()),
        Parent::Valid { sampled: true, .. }
    ));
}

#[test]
fn malformed_parent_is_replaced_and_tracestate_dropped() {
    let (h, buf) = head("traceparent: garbage\r\ntracestate: a=b\r\n");
    let mut rng = FastRng::new(7);
    let t = of_request(TraceContext::Propagate, &h, &buf, &mut rng).unwrap();
    assert!(t.parent.is_none() && t.drop_tracestate);
    assert_eq!(t.replaced().collect::<Vec<_>>(), [TRACEPARENT, TRACESTATE]);
    let mut out = [0u8; 55];
    assert!(matches!(
        parse_traceparent(t.traceparent(&mut out).as_bytes()),
        Parent::Valid { .. }
    ));
}

#[test]
fn modes_without_context() {
    let (h, buf) = head("");
    let mut rng = FastRng::new(1);
    assert!(of_request(TraceContext::Propagate, &h, &buf, &mut rng).is_none());
    let t = of_request(TraceContext::Start, &h, &buf, &mut rng).unwrap();
    assert!(t.w3c && t.parent.is_none() && t.sampled);
    let (h, buf) = head(&format!("traceparent: {TP}\r\n"));
    assert!(of_request(TraceContext::Off, &h, &buf, &mut rng).is_none());
}

#[test]
fn b3_is_propagated_with_its_own_length() {
    let (h, buf) = head(
        "x-b3-traceid: 80f198ee56343ba8\r\nx-b3-spanid: e457b5a2e4d86bd1\r\nx-b3-sampled: 0\r\n",
    );
    let mut rng = FastRng::new(3);
    let t = of_request(TraceContext::Propagate, &h, &buf, &mut rng).unwrap();
    assert!(t.b3 && !t.w3c);
    assert_eq!(t.b3_trace_id(), "80f198ee56343ba8");
    assert_eq!(t.parent_str(), Some("e457b5a2e4d86bd1"));
    assert!(!t.sampled);
    assert_eq!(t.replaced().count(), 4);
}
