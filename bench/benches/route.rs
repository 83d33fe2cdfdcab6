//! Route selection over a realistic 10-route edge table: a hit on the first route, a hit on
//! the last, a fall-through to the default cluster, and a weighted split pick.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use ringway::base::FastRng;
use ringway::config::{
    ClusterId, HostMatch, Limits, ListenerConfig, RouteAction, RouteConfig, RouteMatch,
    WeightedCluster,
};
use ringway::route::{Action, RequestParts, RouteTable, Selection};
use ringway_bench::Group;

ringway_bench::count_allocations!();

fn route(matcher: RouteMatch, action: RouteAction) -> RouteConfig {
    RouteConfig {
        matcher,
        action,
        timeout: Some(Duration::from_secs(5)),
        policy: Default::default(),
    }
}

fn m(host: Option<HostMatch>, prefix: Option<&str>, headers: &[(&str, &str)]) -> RouteMatch {
    RouteMatch {
        host,
        path_prefix: prefix.map(str::to_owned),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        principal: None,
    }
}

fn exact(h: &str) -> Option<HostMatch> {
    Some(HostMatch::Exact(h.into()))
}

fn table() -> RouteTable {
    let c = |i| RouteAction::Cluster(ClusterId(i));
    let routes = vec![
        route(
            m(exact("api.example.com"), Some("/v1/"), &[("x-canary", "1")]),
            c(1),
        ),
        route(
            m(exact("api.example.com"), Some("/v1/"), &[]),
            RouteAction::Split(vec![
                WeightedCluster {
                    cluster: ClusterId(2),
                    weight: 90,
                },
                WeightedCluster {
                    cluster: ClusterId(1),
                    weight: 10,
                },
            ]),
        ),
        route(m(exact("api.example.com"), Some("/v2/"), &[]), c(3)),
        route(
            m(None, Some("/internal/"), &[]),
            RouteAction::Direct {
                status: 403,
                body: "forbidden".into(),
            },
        ),
        route(
            m(
                Some(HostMatch::Suffix(".cdn.example.com".into())),
                None,
                &[],
            ),
            c(4),
        ),
        route(m(exact("auth.example.com"), None, &[]), c(5)),
        route(m(None, Some("/static/"), &[]), c(4)),
        route(m(None, None, &[("x-debug", "true")]), c(6)),
        route(m(exact("admin.example.com"), Some("/ui/"), &[]), c(7)),
        route(
            m(
                exact("www.example.com"),
                Some("/shop/checkout/"),
                &[("x-env", "prod")],
            ),
            c(8),
        ),
    ];
    RouteTable::new(&ListenerConfig {
        name: "edge".into(),
        bind: "127.0.0.1:8080".parse().unwrap(),
        protocol: ringway::config::Protocol::Http,
        cluster: Some(ClusterId(0)),
        interception: ringway::config::Interception::None,
        host_mismatch: ringway::config::HostMismatch::UseTarget,
        proxy_protocol: false,
        connect_attempts: 1,
        limits: Limits::default(),
        routes,
        tls: None,
        sni_routes: Vec::new(),
        authz: Vec::new(),
        reporter: ringway::config::Reporter::Destination,
        access_log: None,
    })
}

const UA: (&str, &[u8]) = ("user-agent", b"Mozilla/5.0 (X11; Linux x86_64) bench");
const ACCEPT: (&str, &[u8]) = ("accept", b"application/json");

fn bench_route(c: &mut Criterion) {
    let table = table();
    let first_headers = [UA, ACCEPT, ("x-canary", b"1")];
    let first = RequestParts {
        host: Some(b"api.example.com:443"),
        path: b"/v1/users/42?expand=orders",
        headers: &first_headers,
    };
    let last_headers = [UA, ACCEPT, ("X-Env", b"prod")];
    let last = RequestParts {
        host: Some(b"WWW.example.com"),
        path: b"/shop/checkout/step-2",
        headers: &last_headers,
    };
    let miss_headers = [UA, ACCEPT];
    let miss = RequestParts {
        host: Some(b"www.example.com"),
        path: b"/blog/2024/01/hello-world?utm_source=x",
        headers: &miss_headers,
    };
    assert!(matches!(table.resolve(&first), Selection::Route(r) if r.index == 0));
    assert!(matches!(table.resolve(&last), Selection::Route(r) if r.index == 9));
    assert!(matches!(table.resolve(&miss), Selection::Default(_)));

    let mut g = Group::new(c, "route_select_10");
    g.bench("hit_first", || black_box(table.resolve(black_box(&first))));
    g.bench("hit_last", || black_box(table.resolve(black_box(&last))));
    g.bench("default_cluster", || {
        black_box(table.resolve(black_box(&miss)))
    });
    g.finish();

    let Some(Action::Split(split)) = table.routes().get(1).map(|r| &r.action) else {
        panic!("route 1 is a split")
    };
    let mut rng = FastRng::new(1);
    let mut g = Group::new(c, "split");
    g.bench("pick_2", || black_box(split.pick_cluster(&mut rng)));
    g.finish();
}

criterion_group!(benches, bench_route);
criterion_main!(benches);
