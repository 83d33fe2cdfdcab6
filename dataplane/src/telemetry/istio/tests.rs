use super::*;
use crate::config::WorkloadConfig;

fn labels(reporter: Reporter) -> IstioLabels {
    IstioLabels {
        workload: WorkloadLabels {
            name: "cart-v1".into(),
            namespace: "shop".into(),
            app: "cart".into(),
            version: "v1".into(),
            principal: "spiffe://cluster.local/ns/shop/sa/cart".into(),
            cluster_id: "Kubernetes".into(),
        },
        listeners: vec![reporter],
        services: vec!["reviews.shop.svc.cluster.local".into()],
        generation: 1,
    }
}

fn sample(status: u16, peer: Option<&str>) -> HttpSample<'_> {
    HttpSample {
        listener: 0,
        cluster: Some(0),
        status,
        error: None,
        peer: Peer { identity: peer },
        duration_us: 3_000,
        request_bytes: 80,
        response_bytes: 2_000,
    }
}

#[test]
fn environment_fills_unset_workload_keys() {
    let env = |k: &str| match k {
        "ISTIO_META_WORKLOAD_NAME" => Some("cart-v1".to_string()),
        "POD_NAMESPACE" => Some("shop".to_string()),
        "SERVICE_ACCOUNT" => Some("cart".to_string()),
        "ISTIO_METAJSON_LABELS" => Some(
            r#"{"app":"cart","service.istio.io/canonical-revision":"v2","version":"v1"}"#.into(),
        ),
        _ => None,
    };
    let w = WorkloadLabels::resolve(&WorkloadConfig::default(), env);
    assert_eq!(w.name, "cart-v1");
    assert_eq!(w.namespace, "shop");
    assert_eq!(w.app, "cart");
    assert_eq!(w.version, "v2");
    assert_eq!(w.principal, "spiffe://cluster.local/ns/shop/sa/cart");
    assert_eq!(w.cluster_id, "Kubernetes");
    let cfg = WorkloadConfig {
        name: Some("from-config".into()),
        ..WorkloadConfig::default()
    };
    let w = WorkloadLabels::resolve(&cfg, |_| None);
    assert_eq!(
        (w.name.as_str(), w.namespace.as_str()),
        ("from-config", "unknown")
    );
}

#[test]
fn destination_reporter_labels_peer_and_mtls() {
    let l = labels(Reporter::Destination);
    let shard = IstioShard::default();
    shard.request(
        &l,
        &sample(200, Some("spiffe://cluster.local/ns/web/sa/frontend")),
    );
    shard.request(
        &l,
        &sample(200, Some("spiffe://cluster.local/ns/web/sa/frontend")),
    );
    shard.request(&l, &sample(503, None));
    let snap = shard.snapshot();
    assert_eq!(snap.http.len(), 2);
    let (text, s) = snap
        .http
        .iter()
        .find(|(k, _)| k.contains("mutual_tls"))
        .unwrap();
    assert_eq!(s.requests, 2);
    for want in [
        r#"reporter="destination""#,
        r#"source_principal="spiffe://cluster.local/ns/web/sa/frontend""#,
        r#"source_workload_namespace="web""#,
        r#"destination_workload="cart-v1""#,
        r#"destination_service="reviews.shop.svc.cluster.local""#,
        r#"destination_service_name="reviews""#,
        r#"destination_service_namespace="shop""#,
        r#"response_code="200""#,
        r#"response_flags="-""#,
    ] {
        assert!(text.contains(want), "{want} not in {text}");
    }
    let (text, _) = snap
        .http
        .iter()
        .find(|(k, _)| k.contains("\"503\""))
        .unwrap();
    assert!(text.contains(r#"connection_security_policy="none""#));
}

#[test]
fn histograms_render_cumulative_with_inf() {
    let l = labels(Reporter::Source);
    let shard = IstioShard::default();
    shard.request(&l, &sample(200, None));
    let mut long = sample(200, None);
    long.duration_us = 7_200_000_000; // beyond the last bound
    shard.request(&l, &long);
    let mut out = String::new();
    shard.snapshot().render(&mut out);
    assert!(out.contains("# TYPE istio_request_duration_milliseconds histogram"));
    let b5 = out
        .lines()
        .find(|l| {
            l.starts_with("istio_request_duration_milliseconds_bucket") && l.contains("le=\"5\"")
        })
        .unwrap();
    assert!(b5.ends_with(" 1"), "{b5}");
    let inf = out
        .lines()
        .find(|l| l.starts_with("istio_request_duration_milliseconds_bucket") && l.contains("+Inf"))
        .unwrap();
    assert!(inf.ends_with(" 2"), "{inf}");
    assert!(out.contains(r#"reporter="source""#));
    assert!(out.contains(r#"source_workload="cart-v1""#));
    assert!(out.contains(r#"connection_security_policy="unknown""#));
    assert!(out
        .lines()
        .any(|l| l.starts_with("istio_response_bytes_sum{") && l.ends_with(" 4000")));
}

#[test]
fn tcp_series_count_open_close_and_bytes() {
    let l = labels(Reporter::Destination);
    let shard = IstioShard::default();
    shard.tcp(&l, 0, Some(0), Peer::default(), TcpEvent::Opened);
    shard.tcp(&l, 0, Some(0), Peer::default(), TcpEvent::Sent(10));
    shard.tcp(&l, 0, Some(0), Peer::default(), TcpEvent::Received(20));
    shard.tcp(&l, 0, Some(0), Peer::default(), TcpEvent::Closed);
    let mut a = shard.snapshot();
    a.merge(&shard.snapshot());
    let s = a.tcp.values().next().unwrap();
    assert_eq!((s.opened, s.closed, s.sent, s.received), (2, 2, 20, 40));
    let mut out = String::new();
    a.render(&mut out);
    assert!(out.contains("istio_tcp_connections_opened_total{"));
    assert!(out.contains(r#"request_protocol="tcp""#));
    assert!(!out.contains("response_code"));
}

#[test]
fn flags_follow_envoy() {
    assert_eq!(response_flags(None), "-");
    assert_eq!(response_flags(Some(ErrorKind::NoHealthyEndpoint)), "UH");
    assert_eq!(response_flags(Some(ErrorKind::UpstreamConnect)), "UF");
    assert_eq!(response_flags(Some(ErrorKind::UpstreamTimeout)), "UT");
    assert_eq!(response_flags(Some(ErrorKind::NoRoute)), "NR");
    assert_eq!(response_flags(Some(ErrorKind::RateLimited)), "RL");
    assert_eq!(response_flags(Some(ErrorKind::Overloaded)), "UO");
}
