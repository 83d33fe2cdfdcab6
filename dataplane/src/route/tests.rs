//! Route matching per CONFIG.md, rule by rule, and weighted-split convergence.

use std::time::Duration;

use super::*;
use crate::base::FastRng;
use crate::config::{HostMatch, Limits, RouteMatch, WeightedCluster};

fn listener(default: Option<u32>, routes: Vec<RouteConfig>) -> ListenerConfig {
    ListenerConfig {
        name: "edge".into(),
        bind: "127.0.0.1:0".parse().unwrap(),
        protocol: crate::config::Protocol::Http,
        cluster: default.map(ClusterId),
        interception: crate::config::Interception::None,
        host_mismatch: crate::config::HostMismatch::UseTarget,
        proxy_protocol: false,
        connect_attempts: 1,
        limits: Limits::default(),
        routes,
        tls: None,
        sni_routes: Vec::new(),
        authz: Vec::new(),
        reporter: crate::config::Reporter::Destination,
        access_log: None,
    }
}

fn to(cluster: u32, matcher: RouteMatch) -> RouteConfig {
    RouteConfig {
        matcher,
        action: RouteAction::Cluster(ClusterId(cluster)),
        timeout: None,
        policy: Default::default(),
    }
}

fn host(h: &str) -> RouteMatch {
    let host = match h.strip_prefix('*') {
        Some(suffix) => HostMatch::Suffix(suffix.into()),
        None => HostMatch::Exact(h.into()),
    };
    RouteMatch {
        host: Some(host),
        ..Default::default()
    }
}

fn prefix(p: &str) -> RouteMatch {
    RouteMatch {
        path_prefix: Some(p.into()),
        ..Default::default()
    }
}

fn headers(h: &[(&str, &str)]) -> RouteMatch {
    RouteMatch {
        headers: h
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

fn req<'a>(
    host: Option<&'a str>,
    path: &'a str,
    hdrs: &'a [(&'a str, &'a [u8])],
) -> RequestParts<'a> {
    RequestParts {
        host: host.map(str::as_bytes),
        path: path.as_bytes(),
        headers: hdrs,
    }
}

/// Which cluster a single-route table (route -> cluster 1, no default) gives the request.
fn routed(matcher: RouteMatch, r: &RequestParts<'_>) -> bool {
    let table = RouteTable::new(&listener(None, vec![to(1, matcher)]));
    table.select(r).is_some()
}

#[test]
fn host_exact_is_case_insensitive_and_ignores_port() {
    let cases: &[(&str, Option<&str>, bool)] = &[
        ("api.example.com", Some("api.example.com"), true),
        ("api.example.com", Some("API.Example.COM"), true),
        ("api.example.com", Some("api.example.com:8080"), true),
        ("api.example.com", Some("api.example.com."), true),
        ("api.example.com", Some("api.example.com.:443"), true),
        ("api.example.com", Some("www.example.com"), false),
        ("api.example.com", Some("api.example.com.evil"), false),
        ("api.example.com", Some("xapi.example.com"), false),
        ("api.example.com", Some(""), false),
        ("api.example.com", None, false),
        ("[::1]", Some("[::1]:8080"), true),
        ("[::1]", Some("[::1]"), true),
        ("[::1]", Some("[::2]:8080"), false),
        ("10.0.0.1", Some("10.0.0.1:80"), true),
    ];
    for &(pattern, h, want) in cases {
        assert_eq!(
            routed(host(pattern), &req(h, "/", &[])),
            want,
            "{pattern} vs {h:?}"
        );
    }
}

#[test]
fn host_wildcard_matches_subdomains_only() {
    let cases: &[(Option<&str>, bool)] = &[
        (Some("a.example.com"), true),
        (Some("A.B.Example.Com:9000"), true),
        (Some("example.com"), false),
        (Some(".example.com"), false),
        (Some("badexample.com"), false),
        (Some("a.example.com.org"), false),
        (None, false),
    ];
    for &(h, want) in cases {
        assert_eq!(
            routed(host("*.example.com"), &req(h, "/", &[])),
            want,
            "{h:?}"
        );
    }
    // A suffix stored without its dot still anchors on a label boundary.
    let undotted = RouteMatch {
        host: Some(HostMatch::Suffix("example.com".into())),
        ..Default::default()
    };
    assert!(!routed(
        undotted.clone(),
        &req(Some("badexample.com"), "/", &[])
    ));
    assert!(routed(undotted, &req(Some("a.example.com"), "/", &[])));
}

#[test]
fn normalize_host_strips_port_and_keeps_ipv6_brackets() {
    let cases: &[(&str, &str)] = &[
        ("a.com", "a.com"),
        ("a.com:80", "a.com"),
        ("a.com.", "a.com"),
        (".", "."),
        ("[::1]:8080", "[::1]"),
        ("[::1]", "[::1]"),
        ("[fe80::1%25eth0]:1", "[fe80::1%25eth0]"),
        ("[::1", "[::1"),
        ("::1", "::1"),
        (":80", ""),
        ("", ""),
    ];
    for &(raw, want) in cases {
        assert_eq!(normalize_host(raw.as_bytes()), want.as_bytes(), "{raw}");
    }
}

#[test]
fn path_prefix_applies_to_the_path_before_the_query() {
    let cases: &[(&str, &str, bool)] = &[
        ("/v1/", "/v1/users", true),
        ("/v1/", "/v1/", true),
        ("/v1/", "/v1", false),
        ("/v1/", "/v2/users", false),
        ("/v1/", "/V1/users", false), // byte prefix: case-sensitive
        ("/v1/", "/?x=/v1/", false),
        ("/v1", "/v1?x", true),
        ("/v1/a", "/v1/?a", false),
        ("/", "/anything", true),
        ("/v1/", "http://h.example/v1/x?y", true),
        ("/", "http://h.example?q", true),
        ("/v1/", "http://h.example", false),
        ("/", "*", false),
    ];
    for &(p, target, want) in cases {
        assert_eq!(
            routed(prefix(p), &req(None, target, &[])),
            want,
            "{p} vs {target}"
        );
    }
}

#[test]
fn headers_need_exact_values_and_case_insensitive_names() {
    let m = || headers(&[("x-canary", "1"), ("x-env", "prod")]);
    assert!(routed(
        m(),
        &req(None, "/", &[("X-Canary", b"1"), ("x-env", b"prod")])
    ));
    assert!(!routed(m(), &req(None, "/", &[("x-canary", b"1")])));
    assert!(!routed(
        m(),
        &req(None, "/", &[("x-canary", b"10"), ("x-env", b"prod")])
    ));
    assert!(!routed(
        m(),
        &req(None, "/", &[("x-canary", b"1"), ("x-env", b"Prod")])
    ));
    // Config names are lower-cased at build time even if the model was not.
    assert!(routed(
        headers(&[("X-Canary", "1")]),
        &req(None, "/", &[("x-canary", b"1")])
    ));
}

#[test]
fn all_given_fields_must_hold() {
    let m = || RouteMatch {
        host: Some(HostMatch::Exact("api.example.com".into())),
        path_prefix: Some("/v1/".into()),
        headers: vec![("x-canary".into(), "1".into())],
        principal: None,
    };
    let canary: &[(&str, &[u8])] = &[("x-canary", b"1")];
    assert!(routed(m(), &req(Some("api.example.com"), "/v1/a", canary)));
    assert!(!routed(m(), &req(Some("www.example.com"), "/v1/a", canary)));
    assert!(!routed(m(), &req(Some("api.example.com"), "/v2/a", canary)));
    assert!(!routed(m(), &req(Some("api.example.com"), "/v1/a", &[])));
}

#[test]
fn empty_match_matches_everything() {
    assert!(routed(RouteMatch::default(), &req(None, "*", &[])));
    assert!(routed(RouteMatch::default(), &req(Some("x"), "/y?z", &[])));
}

#[test]
fn first_route_in_file_order_wins() {
    let table = RouteTable::new(&listener(
        Some(9),
        vec![
            to(1, prefix("/v1/admin")),
            to(2, prefix("/v1/")),
            to(3, prefix("/v1/admin/deep")),
            to(4, RouteMatch::default()),
        ],
    ));
    let pick = |path: &str| match table.resolve(&req(None, path, &[])) {
        Selection::Route(r) => (r.index, r.action.clone()),
        other => panic!("{other:?}"),
    };
    assert!(matches!(
        pick("/v1/admin/deep/x"),
        (0, Action::Cluster(ClusterId(1)))
    ));
    assert!(matches!(
        pick("/v1/users"),
        (1, Action::Cluster(ClusterId(2)))
    ));
    assert!(matches!(pick("/other"), (3, Action::Cluster(ClusterId(4)))));
}

#[test]
fn unmatched_requests_go_to_the_default_cluster_or_404() {
    let routes = || vec![to(1, prefix("/api/"))];
    let with_default = RouteTable::new(&listener(Some(7), routes()));
    let without = RouteTable::new(&listener(None, routes()));
    let r = req(Some("x"), "/web", &[]);
    assert_eq!(with_default.default_cluster(), Some(ClusterId(7)));
    assert!(matches!(
        with_default.resolve(&r),
        Selection::Default(ClusterId(7))
    ));
    assert!(matches!(without.resolve(&r), Selection::NotFound));
    assert!(without.select(&r).is_none());
    assert!(matches!(
        without.resolve(&req(None, "/api/x", &[])),
        Selection::Route(_)
    ));
    let empty = RouteTable::new(&listener(None, vec![]));
    assert!(matches!(empty.resolve(&r), Selection::NotFound));
}

#[test]
fn direct_and_timeout_are_exposed() {
    let table = RouteTable::new(&listener(
        None,
        vec![RouteConfig {
            matcher: prefix("/internal/"),
            action: RouteAction::Direct {
                status: 403,
                body: "forbidden".into(),
            },
            timeout: Some(Duration::from_secs(5)),
            policy: Default::default(),
        }],
    ));
    let Some(route) = table.select(&req(None, "/internal/x", &[])) else {
        panic!("no route")
    };
    assert_eq!(route.timeout, Some(Duration::from_secs(5)));
    let Action::Direct(d) = &route.action else {
        panic!("{:?}", route.action)
    };
    assert_eq!((d.status, &d.body[..]), (403, &b"forbidden"[..]));
}

#[test]
fn empty_split_answers_503_instead_of_panicking() {
    let table = RouteTable::new(&listener(
        None,
        vec![RouteConfig {
            matcher: RouteMatch::default(),
            action: RouteAction::Split(vec![]),
            timeout: None,
            policy: Default::default(),
        }],
    ));
    let route = table.select(&req(None, "/", &[])).unwrap();
    assert!(matches!(&route.action, Action::Direct(d) if d.status == 503));
}

fn split(weights: &[(u32, u32)]) -> WeightedSplit {
    let w: Vec<_> = weights
        .iter()
        .map(|&(c, weight)| WeightedCluster {
            cluster: ClusterId(c),
            weight,
        })
        .collect();
    WeightedSplit::new(&w).unwrap()
}

fn shares(s: &WeightedSplit, clusters: u32, draws: u32, seed: u64) -> Vec<f64> {
    let mut rng = FastRng::new(seed);
    let mut counts = vec![0u32; clusters as usize];
    for _ in 0..draws {
        counts[s.pick_cluster(&mut rng).0 as usize] += 1;
    }
    counts
        .iter()
        .map(|&c| f64::from(c) / f64::from(draws))
        .collect()
}

#[test]
fn weighted_split_converges_to_its_weights() {
    for seed in [1, 2, 3] {
        let got = shares(&split(&[(0, 90), (1, 10)]), 2, 200_000, seed);
        assert!((got[0] - 0.90).abs() < 0.015, "{got:?}");
        assert!((got[1] - 0.10).abs() < 0.015, "{got:?}");
        let got = shares(&split(&[(0, 1), (1, 2), (2, 3), (3, 4)]), 4, 200_000, seed);
        for (i, share) in got.iter().enumerate() {
            assert!((share - (i + 1) as f64 / 10.0).abs() < 0.015, "{got:?}");
        }
    }
}

#[test]
fn zero_weights_are_never_picked_and_all_zero_is_uniform() {
    let got = shares(&split(&[(0, 0), (1, 5), (2, 0)]), 3, 10_000, 9);
    assert_eq!((got[0], got[2]), (0.0, 0.0));
    let got = shares(&split(&[(0, 0), (1, 0)]), 2, 20_000, 9);
    assert!((got[0] - 0.5).abs() < 0.02, "{got:?}");
    assert!(WeightedSplit::new(&[]).is_none());
}

#[test]
fn split_with_extreme_weights_never_panics() {
    let s = split(&[(0, u32::MAX), (1, u32::MAX), (2, 1)]);
    let mut rng = FastRng::new(5);
    for _ in 0..10_000 {
        assert!(s.pick_cluster(&mut rng).0 < 3);
    }
}

#[test]
fn select_never_panics_on_arbitrary_bytes() {
    let table = RouteTable::new(&listener(
        Some(0),
        vec![
            to(1, host("*.a.b")),
            to(2, host("[::1]")),
            to(3, prefix("/x")),
        ],
    ));
    let mut rng = FastRng::new(77);
    let alphabet = b"[]:.?/*%aAx1 \xff";
    let mut buf = [0u8; 24];
    for _ in 0..20_000 {
        let len = rng.below_usize(buf.len());
        for b in &mut buf[..len] {
            *b = alphabet[rng.below_usize(alphabet.len())];
        }
        let bytes = &buf[..len];
        let r = RequestParts {
            host: Some(bytes),
            path: bytes,
            headers: &[],
        };
        let _ = table.resolve(&r);
    }
}

#[test]
fn tables_can_be_shared_read_only_across_workers() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RouteTable>();
    assert_send_sync::<WeightedSplit>();
}
