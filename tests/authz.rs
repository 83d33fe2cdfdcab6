//! Authorization policy and TLS passthrough against real processes: Istio-style allow/deny
//! rules on an mTLS listener (principals with wildcards, methods, paths) and on routes,
//! address blocks on plaintext listeners, connection-level rules on `tcp` listeners, routing
//! by the verified principal, and `sni_routes` choosing a backend by the ClientHello's
//! server name without terminating TLS.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use support::tls_client::{client_config, request, status_of, tls_connect};
use support::{free_port, metric, LeafSpec, Pki, Proxy, TcpPeer, Upstream};

const FRONTEND: &str = "spiffe://cluster.local/ns/shop/sa/frontend";
const BATCH: &str = "spiffe://cluster.local/ns/ops/sa/batch";

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn p(path: &std::path::Path) -> String {
    path.display().to_string()
}

#[test]
fn mtls_listener_rules_allow_deny_and_route_by_principal() {
    let app = Upstream::start(&[]);
    let ops = Upstream::start(&["--body-size", "3"]);
    let mut pki = Pki::new("authz");
    let server = pki.leaf(
        "server",
        &LeafSpec {
            names: &["localhost"],
            ..Default::default()
        },
    );
    let frontend = pki.leaf(
        "frontend",
        &LeafSpec {
            spiffe: Some(FRONTEND),
            ..Default::default()
        },
    );
    let batch = pki.leaf(
        "batch",
        &LeafSpec {
            spiffe: Some(BATCH),
            ..Default::default()
        },
    );
    let (listen, admin) = (free_port(), free_port());
    let cfg = format!(
        r#"[runtime]
workers = 2

[admin]
bind = "127.0.0.1:{admin}"

[[listeners]]
name = "inbound"
bind = "127.0.0.1:{listen}"
cluster = "app"

[listeners.tls]
cert = "{cert}"
key = "{key}"
client_ca = "{ca}"

[[listeners.authz]]
name = "deny-admin"
action = "deny"
to = {{ paths = ["/admin*"] }}

[[listeners.authz]]
name = "shop-reads"
action = "allow"
from = {{ principals = ["spiffe://cluster.local/ns/shop/*"] }}
to = {{ methods = ["GET"], paths = ["/size/*", "/internal/*"] }}

[[listeners.authz]]
name = "ops-namespace"
action = "allow"
from = {{ namespaces = ["ops"] }}

[[listeners.routes]]
match = {{ principal = "spiffe://cluster.local/ns/ops/*" }}
cluster = "ops"

[[listeners.routes]]
match = {{ path_prefix = "/internal/" }}
cluster = "app"

  [[listeners.routes.authz]]
  name = "internal-only-ops"
  action = "allow"
  from = {{ namespaces = ["ops"] }}

[[clusters]]
name = "app"
endpoints = ["{app}"]

[[clusters]]
name = "ops"
endpoints = ["{ops}"]
"#,
        cert = p(&server.cert),
        key = p(&server.key),
        ca = p(&pki.ca),
        app = app.addr(),
        ops = ops.addr(),
    );
    let proxy = Proxy::start(&cfg);
    let at = addr(listen);
    let mut front = tls_connect(at, "localhost", client_config(&pki.ca, Some(&frontend))).unwrap();
    // (method, path, status): on one keep-alive connection — a denial does not close it.
    for (m, path, want) in [
        ("GET", "/size/4", 200),
        ("POST", "/size/4", 403),
        ("GET", "/admin/x", 403),
        ("GET", "/other", 403),
        ("GET", "/internal/x", 403),
        ("GET", "/size/2", 200),
    ] {
        let (head, body) = request(&mut front, m, path).unwrap();
        assert_eq!(status_of(&head), want, "{m} {path}: {head}");
        if want == 403 {
            assert_eq!(body, b"RBAC: access denied\n");
        }
    }
    // The ops namespace: allowed anything but /admin, and routed to its own cluster.
    let mut b = tls_connect(at, "localhost", client_config(&pki.ca, Some(&batch))).unwrap();
    let (head, body) = request(&mut b, "DELETE", "/whatever").unwrap();
    assert_eq!(status_of(&head), 200, "{head}");
    assert_eq!(body.len(), 3, "routed by principal to the ops cluster");
    assert_eq!(status_of(&request(&mut b, "GET", "/admin").unwrap().0), 403);
    let denied = |rule: &str| {
        metric(
            &proxy,
            &format!("ringway_authz_denied_total{{listener=\"inbound\",rule=\"{rule}\"}}"),
        )
    };
    assert_eq!(denied("deny-admin"), 2.0);
    assert_eq!(denied("inbound.authz"), 2.0);
    assert_eq!(denied("inbound.routes[1].authz"), 1.0);
}

#[test]
fn plaintext_and_tcp_listeners_check_addresses_and_ports() {
    let app = Upstream::start(&[]);
    let echo = TcpPeer::start("echo");
    let (http, tcp_ok, tcp_no, admin) = (free_port(), free_port(), free_port(), free_port());
    let cfg = format!(
        r#"[runtime]
workers = 1

[admin]
bind = "127.0.0.1:{admin}"

[[listeners]]
name = "web"
bind = "127.0.0.1:{http}"
cluster = "app"

[[listeners.routes]]
match = {{ path_prefix = "/private/" }}
cluster = "app"

  [[listeners.routes.authz]]
  name = "office-only"
  action = "allow"
  from = {{ ip_blocks = ["10.0.0.0/8"] }}

[[listeners]]
name = "tcp-ok"
bind = "127.0.0.1:{tcp_ok}"
protocol = "tcp"
cluster = "echo"

[[listeners.authz]]
action = "allow"
from = {{ ip_blocks = ["127.0.0.0/8"] }}
to = {{ ports = [{tcp_ok}] }}

[[listeners]]
name = "tcp-no"
bind = "127.0.0.1:{tcp_no}"
protocol = "tcp"
cluster = "echo"

[[listeners.authz]]
name = "no-loopback"
action = "deny"
from = {{ ip_blocks = ["127.0.0.1"] }}

[[clusters]]
name = "app"
endpoints = ["{app}"]

[[clusters]]
name = "echo"
endpoints = ["{echo}"]
"#,
        app = app.addr(),
        echo = echo.addr(),
    );
    let proxy = Proxy::start(&cfg);
    let mut c = support::Client::connect(addr(http));
    assert_eq!(c.get("/size/1", "x").status, 200);
    let r = c.get("/private/x", "x");
    assert_eq!(r.status, 403);
    assert_eq!(
        c.get("/size/1", "x").status,
        200,
        "connection kept after a 403"
    );
    // tcp-ok relays, tcp-no closes at once without relaying.
    let mut ok = TcpStream::connect(addr(tcp_ok)).unwrap();
    ok.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    ok.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    ok.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    let mut no = TcpStream::connect(addr(tcp_no)).unwrap();
    no.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = no.write_all(b"ping");
    let mut got = Vec::new();
    let _ = no.read_to_end(&mut got);
    assert!(got.is_empty(), "denied connection relayed {got:?}");
    assert_eq!(
        metric(
            &proxy,
            "ringway_authz_denied_total{listener=\"tcp-no\",rule=\"no-loopback\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &proxy,
            "ringway_authz_denied_total{listener=\"web\",rule=\"web.routes[0].authz\"}"
        ),
        1.0
    );
}

#[test]
fn sni_routes_pass_tls_through_to_the_backend_its_name_picks() {
    let app = Upstream::start(&[]);
    let echo = TcpPeer::start("echo");
    let mut pki = Pki::new("passthrough");
    // Two TLS backends (ringways terminating TLS, each with its own certificate).
    let backend = |name: &str, pki: &mut Pki| {
        let leaf = pki.leaf(
            name,
            &LeafSpec {
                names: &[name],
                ..Default::default()
            },
        );
        let (listen, admin) = (free_port(), free_port());
        let cfg = format!(
            "[runtime]\nworkers = 1\n\n[admin]\nbind = \"127.0.0.1:{admin}\"\n\n\
             [[listeners]]\nname = \"b\"\nbind = \"127.0.0.1:{listen}\"\ncluster = \"app\"\n\n\
             [listeners.tls]\ncert = \"{}\"\nkey = \"{}\"\n\n\
             [[clusters]]\nname = \"app\"\nendpoints = [\"{}\"]\n",
            p(&leaf.cert),
            p(&leaf.key),
            app.addr()
        );
        (Proxy::start(&cfg), addr(listen))
    };
    let (_a, a_at) = backend("a.example.com", &mut pki);
    let (_b, b_at) = backend("b.internal", &mut pki);
    let (listen, admin) = (free_port(), free_port());
    let cfg = format!(
        r#"[runtime]
workers = 2

[admin]
bind = "127.0.0.1:{admin}"

[[listeners]]
name = "gateway"
bind = "127.0.0.1:{listen}"
protocol = "tcp"
cluster = "plain"

[[listeners.sni_routes]]
server_names = ["*.example.com"]
cluster = "a"

[[listeners.sni_routes]]
server_names = ["b.internal"]
cluster = "b"

[[clusters]]
name = "a"
endpoints = ["{a_at}"]

[[clusters]]
name = "b"
endpoints = ["{b_at}"]

[[clusters]]
name = "plain"
endpoints = ["{echo}"]
"#,
        echo = echo.addr()
    );
    let proxy = Proxy::start(&cfg);
    let gw = addr(listen);
    let client = client_config(&pki.ca, None);
    // The certificate each name verifies against proves which backend answered.
    for name in ["a.example.com", "B.Internal"] {
        let mut s = tls_connect(gw, name, client.clone()).unwrap();
        for _ in 0..3 {
            assert_eq!(
                status_of(&support::tls_client::get(&mut s, "/size/9").unwrap().0),
                200
            );
        }
    }
    // An unknown name goes to the default cluster (a plaintext echo: the handshake fails).
    assert!(tls_connect(gw, "c.other", client).is_err());
    // Not TLS at all: the default cluster, bytes untouched.
    let mut plain = TcpStream::connect(gw).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    plain.write_all(b"hello, not tls\n").unwrap();
    let mut buf = [0u8; 15];
    plain.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello, not tls\n");
    // A malformed ClientHello closes the connection.
    let mut bad = TcpStream::connect(gw).unwrap();
    bad.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // A real ClientHello whose server name has a character DNS names cannot have.
    let mut hello = include_bytes!("../fuzz/seeds/client_hello/openssl_sni_alpn").to_vec();
    let at = hello
        .windows(13)
        .position(|w| w == b"a.example.com")
        .unwrap();
    hello[at + 1] = b'!';
    bad.write_all(&hello).unwrap();
    let mut got = Vec::new();
    let _ = bad.read_to_end(&mut got);
    assert!(got.is_empty());
    let result = |r: &str| {
        metric(
            &proxy,
            &format!("ringway_tls_passthrough_total{{listener=\"gateway\",result=\"{r}\"}}"),
        )
    };
    assert_eq!(result("matched"), 2.0);
    assert_eq!(result("default"), 1.0);
    assert_eq!(result("not_tls"), 1.0);
    assert_eq!(result("malformed"), 1.0);
}
