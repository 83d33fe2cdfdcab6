//! Route selection through a real `ringway`: no-match 404, `path_prefix` / `host` /
//! `headers` matches picking different upstreams (told apart by `x-upstream`), `direct`
//! answers, and a weighted split.

mod support;

use std::net::SocketAddr;

use support::{Rig, Spec, Upstream};

fn cluster(name: &str, addr: SocketAddr) -> String {
    format!("[[clusters]]\nname = \"{name}\"\nendpoints = [\"{addr}\"]\n\n")
}

#[test]
fn route_miss_without_default_cluster_is_404() {
    let a = Upstream::start(&["--name", "a"]);
    let mut spec = Spec::new(2, &[]);
    let extra = cluster("a", a.addr());
    spec.listener_extra =
        "[[listeners.routes]]\nmatch = { path_prefix = \"/a/\" }\ncluster = \"a\"\n";
    spec.extra = &extra;
    let rig = Rig::start(&spec);
    let mut c = rig.client();
    let r = c.get("/b/x", "h");
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.header("server"), Some("ringway"));
    assert!(!r.body.is_empty(), "proxy answers carry a short body");
    assert_eq!(a.stats().requests, 0);
    let r = rig.client().get("/a/x", "h");
    assert_eq!((r.status, r.header("x-upstream")), (200, Some("a")));
}

#[test]
fn path_host_and_header_routes_pick_their_clusters() {
    let a = Upstream::start(&["--name", "a"]);
    let b = Upstream::start(&["--name", "b"]);
    let c = Upstream::start(&["--name", "c"]);
    let d = Upstream::start(&["--name", "d"]);
    let mut spec = Spec::new(2, &[d.addr()]);
    let extra = [
        cluster("a", a.addr()),
        cluster("b", b.addr()),
        cluster("c", c.addr()),
    ]
    .concat();
    spec.listener_extra = r#"
[[listeners.routes]]
match = { headers = { "x-canary" = "1" } }
cluster = "c"

[[listeners.routes]]
match = { host = "*.example.org" }
cluster = "b"

[[listeners.routes]]
match = { path_prefix = "/a/" }
cluster = "a"
"#;
    spec.extra = &extra;
    let rig = Rig::start(&spec);
    let mut cl = rig.client();
    let cases: [(&str, &str, &str, &str); 8] = [
        ("/a/x", "z.test", "", "a"),
        ("/a/?q=1", "z.test", "", "a"),
        ("/x?/a/", "z.test", "", "d"),
        ("/x", "api.example.org", "", "b"),
        ("/a/x", "API.Example.ORG:8080", "", "b"),
        ("/a/x", "api.example.org", "X-Canary: 1\r\n", "c"),
        ("/x", "z.test", "x-canary: 2\r\n", "d"),
        ("/x", "example.org.evil", "", "d"),
    ];
    for (path, host, hdr, want) in cases {
        cl.send_raw(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{hdr}\r\n").as_bytes());
        let r = cl.read_response().expect("response");
        assert_eq!(r.status, 200, "{path} {host} {hdr:?}");
        assert_eq!(
            r.header("x-upstream"),
            Some(want),
            "GET {path} Host: {host} {hdr:?}"
        );
    }
}

#[test]
fn direct_route_is_answered_by_the_proxy() {
    let up = Upstream::start(&[]);
    let mut spec = Spec::new(2, &[up.addr()]);
    spec.listener_extra = r#"
[[listeners.routes]]
match = { path_prefix = "/internal/" }
direct = { status = 403, body = "forbidden" }
"#;
    let rig = Rig::start(&spec);
    let mut c = rig.client();
    let r = c.get("/internal/secret", "h");
    assert_eq!(r.status, 403);
    assert_eq!(r.body, b"forbidden");
    assert_eq!(r.header("server"), Some("ringway"));
    // The connection stays usable and ordinary requests still reach the upstream.
    assert_eq!(c.get("/other", "h").status, 200);
    assert_eq!(up.stats().requests, 1);
}

#[test]
fn weighted_split_spreads_requests_by_weight() {
    let a = Upstream::start(&["--name", "a"]);
    let b = Upstream::start(&["--name", "b"]);
    let mut spec = Spec::new(2, &[]);
    let extra = [cluster("a", a.addr()), cluster("b", b.addr())].concat();
    spec.listener_extra = r#"
[[listeners.routes]]
split = [ { cluster = "a", weight = 50 }, { cluster = "b", weight = 50 } ]
"#;
    spec.extra = &extra;
    let rig = Rig::start(&spec);
    let (mut na, mut nb) = (0u32, 0u32);
    for _conn in 0..4 {
        let mut c = rig.client();
        for _ in 0..100 {
            match c.get("/", "h").header("x-upstream") {
                Some("a") => na += 1,
                Some("b") => nb += 1,
                other => panic!("unexpected x-upstream {other:?}"),
            }
        }
    }
    assert_eq!(na + nb, 400);
    // Binomial(400, 0.5): sd = 10; 140..=260 is six standard deviations.
    assert!((140..=260).contains(&na), "split a={na} b={nb}");
    assert_eq!(
        (a.stats().requests, b.stats().requests),
        (u64::from(na), u64::from(nb))
    );
}

#[test]
fn round_robin_alternates_between_endpoints() {
    let a = Upstream::start(&["--name", "a"]);
    let b = Upstream::start(&["--name", "b"]);
    let rig = Rig::start(&Spec::new(1, &[a.addr(), b.addr()]));
    let mut c = rig.client();
    let names: Vec<String> = (0..10)
        .map(|_| {
            c.get("/", "h")
                .header("x-upstream")
                .unwrap_or("?")
                .to_string()
        })
        .collect();
    let na = names.iter().filter(|n| *n == "a").count();
    assert_eq!(na, 5, "round robin over one worker: {names:?}");
}

#[test]
fn dead_endpoint_does_not_take_the_live_one_down() {
    let dead = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let live = Upstream::start(&["--name", "live"]);
    let rig = Rig::start(&Spec::new(1, &[dead, live.addr()]));
    let mut ok = 0;
    for _ in 0..10 {
        let mut c = rig.client();
        let r = c.get("/", "h");
        match r.status {
            200 => ok += 1,
            502 | 503 => assert_eq!(r.header("server"), Some("ringway")),
            s => panic!("unexpected status {s}"),
        }
    }
    assert!(
        ok >= 5,
        "only {ok} of 10 requests succeeded with one live endpoint"
    );
}

#[test]
fn pool_max_idle_zero_opens_a_connection_per_request() {
    let up = Upstream::start(&[]);
    let mut spec = Spec::new(1, &[up.addr()]);
    spec.extra = "[clusters.pool]\nmax_idle = 0\n";
    // `extra` follows the `web` cluster table, so this `[clusters.pool]` belongs to it.
    let rig = Rig::start(&spec);
    let mut c = rig.client();
    for _ in 0..4 {
        assert_eq!(c.get("/", "h").status, 200);
    }
    assert_eq!(up.stats().connections, 4);
}

#[test]
fn pool_max_requests_per_connection_rotates_connections() {
    let up = Upstream::start(&[]);
    let mut spec = Spec::new(1, &[up.addr()]);
    spec.extra = "[clusters.pool]\nmax_requests_per_connection = 2\n";
    let rig = Rig::start(&spec);
    let mut c = rig.client();
    for _ in 0..6 {
        assert_eq!(c.get("/", "h").status, 200);
    }
    let s = up.stats();
    assert_eq!((s.requests, s.connections), (6, 3), "{s:?}");
}
