//! TLS against real processes: termination (curl, openssl s_client, a rustls client), SNI
//! certificate choice, TLS 1.3-only listeners, origination to TLS upstreams, the mTLS sidecar
//! pair (outbound originates mTLS, inbound terminates it) with SPIFFE identities and
//! `x-forwarded-client-cert`, certificate rotation without dropping connections, the expiry
//! metric, and the failure modes: plaintext to a TLS port, untrusted / expired / wrong-identity
//! certificates on both sides, a stalled handshake, a truncated TLS body, bad files at
//! `--check`.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::tls_client::{client_config, get, status_of, tls_connect, TlsClient};
use support::{free_port, metric, Leaf, LeafSpec, Pki, Proxy, Upstream};

const FRONTEND: &str = "spiffe://cluster.local/ns/shop/sa/frontend";
const CART: &str = "spiffe://cluster.local/ns/shop/sa/cart";

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn p(path: &std::path::Path) -> String {
    path.display().to_string()
}

/// A one-listener HTTP config with `[listeners.tls]` = `tls` (TOML lines) to `upstream`.
fn terminating(upstream: SocketAddr, tls: &str, cluster_extra: &str) -> (String, SocketAddr) {
    let (listen, admin) = (free_port(), free_port());
    let text = format!(
        "[runtime]\nworkers = 2\n\n[admin]\nbind = \"127.0.0.1:{admin}\"\n\n\
         [[listeners]]\nname = \"edge\"\nbind = \"127.0.0.1:{listen}\"\ncluster = \"app\"\n\n\
         [listeners.tls]\n{tls}\n\n\
         [[clusters]]\nname = \"app\"\nendpoints = [\"{upstream}\"]\n{cluster_extra}\n"
    );
    (text, addr(listen))
}

/// A leaf for `localhost` issued by `pki`.
fn localhost_leaf(pki: &mut Pki) -> Leaf {
    pki.leaf(
        "server",
        &LeafSpec {
            names: &["localhost"],
            ..Default::default()
        },
    )
}

/// The `cert` and `key` lines of `[listeners.tls]` for `leaf`.
fn cert_and_key(leaf: &Leaf) -> String {
    format!("cert = \"{}\"\nkey = \"{}\"", p(&leaf.cert), p(&leaf.key))
}

fn curl_available() -> bool {
    Command::new("curl").arg("--version").output().is_ok()
}

#[test]
fn terminates_https_for_curl_and_rustls_clients() {
    let up = Upstream::start(&[]);
    let mut pki = Pki::new("edge");
    let server = pki.leaf(
        "server",
        &LeafSpec {
            names: &["localhost", "127.0.0.1"],
            ..Default::default()
        },
    );
    let (cfg, at) = terminating(up.addr(), &cert_and_key(&server), "");
    let proxy = Proxy::start(&cfg);
    // rustls: several keep-alive requests on one connection, then a large body.
    let mut s = tls_connect(at, "localhost", client_config(&pki.ca, None)).unwrap();
    assert_eq!(s.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    for _ in 0..20 {
        let (head, body) = get(&mut s, "/size/5").unwrap();
        assert_eq!(status_of(&head), 200, "{head}");
        assert_eq!(body.len(), 5);
    }
    let (head, body) = get(&mut s, "/size/3000000").unwrap();
    assert_eq!(status_of(&head), 200);
    assert_eq!(body.len(), 3_000_000);
    assert!(body
        .iter()
        .enumerate()
        .all(|(i, &b)| b == b'a' + (i % 26) as u8));
    // curl, with its own TLS stack, verifying the name against the CA.
    if curl_available() {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert", &p(&pki.ca)])
            .arg("--resolve")
            .arg(format!("localhost:{}:127.0.0.1", at.port()))
            .arg(format!("https://localhost:{}/size/7", at.port()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "curl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, b"abcdefg");
        // TLS 1.2 explicitly.
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", "--tlsv1.2", "--tls-max", "1.2"])
            .args(["--cacert", &p(&pki.ca)])
            .arg(format!("https://127.0.0.1:{}/size/3", at.port()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "curl tls1.2: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        metric(
            &proxy,
            "ringway_tls_handshakes_total{listener=\"edge\",result=\"ok\"}"
        ) >= 1.0
    );
    let expiry = metric(
        &proxy,
        &format!(
            "ringway_certificate_expiry_seconds{{owner=\"listener edge\",file=\"{}\",name=\"localhost\"}}",
            p(&server.cert)
        ),
    );
    assert!(expiry > 86400.0, "expiry metric {expiry}");
}

#[test]
fn picks_the_certificate_by_sni_and_honours_min_version() {
    let up = Upstream::start(&[]);
    let mut pki = Pki::new("sni");
    let default = pki.leaf(
        "default",
        &LeafSpec {
            names: &["default.example"],
            ..Default::default()
        },
    );
    let api = pki.leaf(
        "api",
        &LeafSpec {
            names: &["api.example.com"],
            ..Default::default()
        },
    );
    let (cfg, at) = terminating(
        up.addr(),
        &format!(
            "cert = \"{}\"\nkey = \"{}\"\nmin_version = \"1.3\"\n\n[[listeners.tls.sni]]\nserver_names = [\"*.example.com\"]\ncert = \"{}\"\nkey = \"{}\"",
            p(&default.cert),
            p(&default.key),
            p(&api.cert),
            p(&api.key)
        ),
        "",
    );
    let _proxy = Proxy::start(&cfg);
    let client = client_config(&pki.ca, None);
    // Each name verifies only against its own certificate: the handshake proves the choice.
    let mut s = tls_connect(at, "api.example.com", client.clone()).unwrap();
    assert_eq!(status_of(&get(&mut s, "/size/1").unwrap().0), 200);
    assert_eq!(
        s.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    let mut s = tls_connect(at, "default.example", client.clone()).unwrap();
    assert_eq!(status_of(&get(&mut s, "/size/1").unwrap().0), 200);
    assert!(tls_connect(at, "api.example.com.evil", client).is_err());
    // A TLS 1.2-only client is refused.
    if curl_available() {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "5", "--tls-max", "1.2", "-k"])
            .arg(format!("https://127.0.0.1:{}/size/3", at.port()))
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "TLS 1.2 accepted by a 1.3-only listener"
        );
    }
}

/// The Istio data path: app → outbound sidecar (plaintext in, mTLS out) → inbound sidecar
/// (mTLS in, plaintext out) → app. Neither app knows about TLS.
struct SidecarPair {
    _outbound: Proxy,
    inbound: Proxy,
    outbound_at: SocketAddr,
    inbound_at: SocketAddr,
}

fn sidecar_pair(
    app: SocketAddr,
    pki: &mut Pki,
    inbound_identities: &str,
    outbound_identities: &str,
) -> SidecarPair {
    let frontend = pki.leaf(
        "frontend",
        &LeafSpec {
            spiffe: Some(FRONTEND),
            ..Default::default()
        },
    );
    let cart = pki.leaf(
        "cart",
        &LeafSpec {
            spiffe: Some(CART),
            names: &["cart.shop.svc.cluster.local"],
            ..Default::default()
        },
    );
    let (in_port, in_admin, out_port, out_admin) =
        (free_port(), free_port(), free_port(), free_port());
    let inbound = format!(
        "[runtime]\nworkers = 2\n\n[admin]\nbind = \"127.0.0.1:{in_admin}\"\n\n\
         [[listeners]]\nname = \"inbound\"\nbind = \"127.0.0.1:{in_port}\"\ncluster = \"local-app\"\n\n\
         [listeners.tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\n{inbound_identities}\nforward_client_cert = \"sanitize_set\"\n\n\
         [[clusters]]\nname = \"local-app\"\nendpoints = [\"{app}\"]\n",
        p(&cart.cert),
        p(&cart.key),
        p(&pki.ca)
    );
    let outbound = format!(
        "[runtime]\nworkers = 2\n\n[admin]\nbind = \"127.0.0.1:{out_admin}\"\n\n\
         [[listeners]]\nname = \"outbound\"\nbind = \"127.0.0.1:{out_port}\"\ncluster = \"cart\"\n\n\
         [[clusters]]\nname = \"cart\"\nendpoints = [\"127.0.0.1:{in_port}\"]\n\n\
         [clusters.tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\nsni = \"cart.shop.svc.cluster.local\"\n{outbound_identities}\n",
        p(&pki.ca),
        p(&frontend.cert),
        p(&frontend.key)
    );
    let inbound = Proxy::start(&inbound);
    let outbound = Proxy::start(&outbound);
    SidecarPair {
        _outbound: outbound,
        inbound,
        outbound_at: addr(out_port),
        inbound_at: addr(in_port),
    }
}

#[test]
fn sidecar_pair_gives_an_authenticated_encrypted_hop_between_plaintext_apps() {
    let app = Upstream::start(&[]);
    let mut pki = Pki::new("mesh");
    let pair = sidecar_pair(
        app.addr(),
        &mut pki,
        &format!("identities = [\"{FRONTEND}\"]"),
        &format!("identities = [\"{CART}\"]"),
    );
    // The plaintext client spoofs an XFCC header: the inbound sidecar must replace it.
    let mut c = support::Client::connect(pair.outbound_at);
    for i in 0..50 {
        let r = c
            .request(
                "GET",
                "/headers",
                &[
                    ("host", "cart"),
                    ("x-forwarded-client-cert", "By=evil;URI=spiffe://evil"),
                ],
                b"",
            )
            .unwrap();
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        let seen = r.text().to_ascii_lowercase();
        let xfcc: Vec<&str> = seen
            .lines()
            .filter(|l| l.starts_with("x-forwarded-client-cert:"))
            .collect();
        assert_eq!(xfcc.len(), 1, "{seen}");
        assert!(
            xfcc[0].contains(&format!("by={}", CART.to_ascii_lowercase()))
                && xfcc[0].contains(&format!("uri={}", FRONTEND.to_ascii_lowercase()))
                && xfcc[0].contains(";hash="),
            "{}",
            xfcc[0]
        );
        assert!(!seen.contains("spiffe://evil"));
    }
    // The hop is TLS: a plaintext request straight to the inbound sidecar gets no answer.
    let mut raw = TcpStream::connect(pair.inbound_at).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    raw.write_all(b"GET /headers HTTP/1.1\r\nHost: cart\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = raw.read_to_end(&mut got);
    assert!(
        !got.starts_with(b"HTTP/1.1 200"),
        "plaintext served on the mTLS port"
    );
    assert!(
        metric(
            &pair.inbound,
            &format!("ringway_tls_peer_connections_total{{listener=\"inbound\",identity=\"{FRONTEND}\"}}")
        ) >= 1.0
    );
    assert!(
        metric(
            &pair.inbound,
            "ringway_tls_handshakes_total{listener=\"inbound\",result=\"not_tls_or_malformed\"}"
        ) >= 1.0
    );
}

#[test]
fn wrong_identities_are_refused_on_both_sides() {
    let app = Upstream::start(&[]);
    // The inbound side accepts only `other`: the frontend is refused at the handshake.
    let mut pki = Pki::new("mesh");
    let pair = sidecar_pair(
        app.addr(),
        &mut pki,
        "identities = [\"spiffe://cluster.local/ns/shop/sa/other\"]",
        &format!("identities = [\"{CART}\"]"),
    );
    let mut c = support::Client::connect(pair.outbound_at);
    let r = c.get("/size/1", "cart");
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(
        metric(
            &pair.inbound,
            "ringway_tls_handshakes_total{listener=\"inbound\",result=\"identity_rejected\"}"
        ) >= 1.0
    );
    drop(pair);
    // The outbound side expects another server identity: it refuses the cart's certificate.
    let mut pki = Pki::new("mesh");
    let pair = sidecar_pair(
        app.addr(),
        &mut pki,
        &format!("identities = [\"{FRONTEND}\"]"),
        "identities = [\"spiffe://cluster.local/ns/pay/sa/*\"]",
    );
    let mut c = support::Client::connect(pair.outbound_at);
    assert_eq!(c.get("/size/1", "cart").status, 502);
    // A wildcard that matches works.
    drop(pair);
    let mut pki = Pki::new("mesh");
    let pair = sidecar_pair(
        app.addr(),
        &mut pki,
        "identities = [\"spiffe://cluster.local/ns/shop/*\"]",
        "identities = [\"spiffe://cluster.local/ns/shop/sa/*\"]",
    );
    let mut c = support::Client::connect(pair.outbound_at);
    assert_eq!(c.get("/size/1", "cart").status, 200);
}

#[test]
fn untrusted_expired_and_missing_client_certificates_are_refused() {
    let up = Upstream::start(&[]);
    let mut pki = Pki::new("mtls");
    let server = localhost_leaf(&mut pki);
    let good = pki.leaf(
        "good",
        &LeafSpec {
            spiffe: Some(FRONTEND),
            ..Default::default()
        },
    );
    let expired = pki.leaf(
        "expired",
        &LeafSpec {
            spiffe: Some(FRONTEND),
            expired: true,
            ..Default::default()
        },
    );
    let future = pki.leaf(
        "future",
        &LeafSpec {
            spiffe: Some(FRONTEND),
            not_yet_valid: true,
            ..Default::default()
        },
    );
    let mut other_ca = Pki::new("other");
    let stranger = other_ca.leaf(
        "stranger",
        &LeafSpec {
            spiffe: Some(FRONTEND),
            ..Default::default()
        },
    );
    let (cfg, at) = terminating(
        up.addr(),
        &format!(
            "cert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\nhandshake_timeout = \"500ms\"",
            p(&server.cert),
            p(&server.key),
            p(&pki.ca)
        ),
        "",
    );
    let proxy = Proxy::start(&cfg);
    let ok = |leaf: Option<&Leaf>| {
        tls_connect(at, "localhost", client_config(&pki.ca, leaf))
            .and_then(|mut s| get(&mut s, "/size/2"))
            .map(|(h, _)| status_of(&h))
    };
    assert_eq!(ok(Some(&good)).unwrap(), 200);
    for (what, leaf) in [
        ("no certificate", None),
        ("expired", Some(&expired)),
        ("not yet valid", Some(&future)),
        ("other CA", Some(&stranger)),
    ] {
        assert!(ok(leaf).is_err(), "{what}: accepted");
    }
    let count = |result: &str| {
        metric(
            &proxy,
            &format!("ringway_tls_handshakes_total{{listener=\"edge\",result=\"{result}\"}}"),
        )
    };
    assert!(count("no_client_certificate") >= 1.0);
    assert!(count("certificate_expired") >= 1.0);
    assert!(count("certificate_not_yet_valid") >= 1.0);
    assert!(count("certificate_rejected") >= 1.0);
    // A client that stalls mid-handshake is closed after handshake_timeout.
    let mut stall = TcpStream::connect(at).unwrap();
    stall
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stall.write_all(&[0x16, 0x03, 0x01, 0x00, 0x40]).unwrap(); // a record header, no body
    let started = Instant::now();
    let mut sink = Vec::new();
    let _ = stall.read_to_end(&mut sink);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    assert!(count("timeout") >= 1.0);
    // Garbage instead of a ClientHello.
    let mut junk = TcpStream::connect(at).unwrap();
    junk.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    junk.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
        .unwrap();
    let _ = junk.read_to_end(&mut sink);
    // The proxy is still fine.
    assert_eq!(ok(Some(&good)).unwrap(), 200);
}

#[test]
fn originates_tls_and_refuses_untrusted_upstreams() {
    // A TLS upstream: a ringway terminating TLS in front of the plaintext test upstream.
    let app = Upstream::start(&[]);
    let mut pki = Pki::new("origin");
    let server = pki.leaf(
        "server",
        &LeafSpec {
            names: &["app.internal", "127.0.0.1"],
            ..Default::default()
        },
    );
    let (term_cfg, term_at) = terminating(app.addr(), &cert_and_key(&server), "");
    let _term = Proxy::start(&term_cfg);
    let mut other = Pki::new("other");
    let edge = |ca: &std::path::Path, sni: &str| {
        let (listen, admin) = (free_port(), free_port());
        let text = format!(
            "[runtime]\nworkers = 1\n\n[admin]\nbind = \"127.0.0.1:{admin}\"\n\n\
             [[listeners]]\nname = \"edge\"\nbind = \"127.0.0.1:{listen}\"\ncluster = \"tls-app\"\n\n\
             [[clusters]]\nname = \"tls-app\"\nendpoints = [\"{term_at}\"]\n{sni}\n\n[clusters.tls]\nca = \"{}\"\n",
            p(ca)
        );
        (Proxy::start(&text), addr(listen))
    };
    // Verified against the IP address (no sni): the certificate has 127.0.0.1.
    let (proxy, at) = edge(&pki.ca, "");
    let mut c = support::Client::connect(at);
    for _ in 0..30 {
        let r = c.get("/size/100000", "app");
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), 100_000);
    }
    // Pooled: 30 requests over (far) fewer than 30 handshakes.
    let handshakes = metric(
        &proxy,
        "ringway_upstream_tls_handshakes_total{cluster=\"tls-app\",result=\"ok\"}",
    );
    assert!((1.0..5.0).contains(&handshakes), "{handshakes} handshakes");
    drop(proxy);
    // Untrusted CA: 502, counted.
    let _ = other.leaf("unused", &LeafSpec::default());
    let (proxy, at) = edge(&other.ca, "");
    let r = support::Client::connect(at).get("/size/1", "app");
    assert_eq!(r.status, 502);
    assert!(
        metric(
            &proxy,
            "ringway_upstream_tls_handshakes_total{cluster=\"tls-app\",result=\"certificate_rejected\"}"
        ) >= 1.0
    );
}

/// A TLS "upstream" that answers with a Content-Length of 100,000 but sends 10,000 bytes and
/// then closes the TCP connection without close_notify.
fn truncating_tls_upstream(leaf: &Leaf) -> SocketAddr {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let cfg = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from_pem_file(&leaf.cert).unwrap()],
            PrivateKeyDer::from_pem_file(&leaf.key).unwrap(),
        )
        .unwrap(),
    );
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let at = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let cfg = cfg.clone();
            std::thread::spawn(move || {
                let mut tls =
                    rustls::StreamOwned::new(rustls::ServerConnection::new(cfg).unwrap(), s);
                let mut buf = [0u8; 4096];
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    match tls.read(&mut buf[..1]) {
                        Ok(1) => head.push(buf[0]),
                        _ => return,
                    }
                }
                let _ = tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n");
                let _ = tls.write_all(&[b'x'; 10_000]);
                let _ = tls.flush();
                std::thread::sleep(Duration::from_millis(100));
                let _ = tls.sock.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    at
}

#[test]
fn a_tls_stream_cut_without_close_notify_is_a_truncation() {
    let mut pki = Pki::new("trunc");
    let leaf = pki.leaf(
        "up",
        &LeafSpec {
            names: &["127.0.0.1"],
            ..Default::default()
        },
    );
    let up = truncating_tls_upstream(&leaf);
    let (listen, admin) = (free_port(), free_port());
    let text = format!(
        "[runtime]\nworkers = 1\n\n[admin]\nbind = \"127.0.0.1:{admin}\"\n\n\
         [[listeners]]\nname = \"edge\"\nbind = \"127.0.0.1:{listen}\"\ncluster = \"up\"\n\n\
         [[clusters]]\nname = \"up\"\nendpoints = [\"{up}\"]\n\n[clusters.tls]\nca = \"{}\"\n",
        p(&pki.ca)
    );
    let _proxy = Proxy::start(&text);
    let mut c = support::Client::connect(addr(listen));
    c.send_raw(b"GET /x HTTP/1.1\r\nHost: up\r\n\r\n");
    let got = c.read_to_close().unwrap_or_default();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text:.200}");
    let body_at = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(
        got.len() - body_at < 100_000,
        "a truncated upstream body was completed"
    );
}

#[test]
fn rotated_certificates_serve_new_handshakes_and_established_connections_continue() {
    let up = Upstream::start(&[]);
    let mut pki = Pki::new("rotate");
    let first = pki.leaf(
        "first",
        &LeafSpec {
            names: &["localhost"],
            ..Default::default()
        },
    );
    let second = pki.leaf(
        "second",
        &LeafSpec {
            names: &["localhost"],
            ..Default::default()
        },
    );
    // Kubernetes layout: cert.pem -> ..data/cert.pem, ..data -> ..v1 (a directory).
    let dir = tempfile::tempdir().unwrap();
    let v1 = dir.path().join("..v1");
    let v2 = dir.path().join("..v2");
    for (v, leaf) in [(&v1, &first), (&v2, &second)] {
        std::fs::create_dir(v).unwrap();
        std::fs::write(v.join("cert.pem"), &leaf.cert_pem).unwrap();
        std::fs::write(v.join("key.pem"), &leaf.key_pem).unwrap();
    }
    let data = dir.path().join("..data");
    std::os::unix::fs::symlink(&v1, &data).unwrap();
    for f in ["cert.pem", "key.pem"] {
        std::os::unix::fs::symlink(data.join(f), dir.path().join(f)).unwrap();
    }
    let (cfg, at) = terminating(
        up.addr(),
        &format!(
            "cert = \"{}\"\nkey = \"{}\"",
            p(&dir.path().join("cert.pem")),
            p(&dir.path().join("key.pem"))
        ),
        "",
    );
    let proxy = Proxy::start(&cfg);
    let client = client_config(&pki.ca, None);
    let served_cert = |s: &TlsClient| s.conn.peer_certificates().unwrap()[0].to_vec();
    let der = |leaf: &Leaf| {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::from_pem_file(&leaf.cert)
            .unwrap()
            .to_vec()
    };
    let mut old = tls_connect(at, "localhost", client.clone()).unwrap();
    assert_eq!(served_cert(&old), der(&first));
    assert_eq!(status_of(&get(&mut old, "/size/1").unwrap().0), 200);
    // An invalid set (the key of another certificate) is rejected: the first keeps serving.
    std::fs::write(v1.join("key.pem"), &second.key_pem).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let s = tls_connect(at, "localhost", client.clone()).unwrap();
    assert_eq!(served_cert(&s), der(&first));
    assert!(
        proxy.stderr_text().contains("do not load"),
        "{}",
        proxy.stderr_text()
    );
    assert_eq!(
        metric(&proxy, "ringway_tls_reloads_total{result=\"rejected\"}"),
        1.0
    );
    // The symlink swap.
    let tmp = dir.path().join("..data.tmp");
    std::os::unix::fs::symlink(&v2, &tmp).unwrap();
    std::fs::rename(&tmp, &data).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = tls_connect(at, "localhost", client.clone()).unwrap();
        if served_cert(&s) == der(&second) {
            break;
        }
        assert!(Instant::now() < deadline, "rotation not picked up");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(metric(&proxy, "ringway_tls_reloads_total{result=\"ok\"}") >= 1.0);
    // The connection made before the rotation still works.
    for _ in 0..5 {
        assert_eq!(status_of(&get(&mut old, "/size/1").unwrap().0), 200);
    }
}

#[test]
fn check_names_the_bad_file() {
    let mut pki = Pki::new("check");
    let a = pki.leaf("a", &LeafSpec::default());
    let b = pki.leaf("b", &LeafSpec::default());
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not pem at all\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let cases = [
        (
            format!("cert = \"{}\"\nkey = \"{}\"", p(&a.cert), p(&b.key)),
            format!("does not match the certificate {}", p(&a.cert)),
        ),
        (
            format!("cert = \"{}\"\nkey = \"{}\"", p(&missing), p(&a.key)),
            format!("cannot read {}", p(&missing)),
        ),
        (
            format!("cert = \"{}\"\nkey = \"{}\"", p(&garbage), p(&a.key)),
            format!("{}: no certificate", p(&garbage)),
        ),
        (
            format!("cert = \"{}\"\nkey = \"{}\"", p(&a.cert), p(&a.cert)),
            format!("{}: no private key", p(&a.cert)),
        ),
        (
            format!(
                "cert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"",
                p(&a.cert),
                p(&a.key),
                p(&garbage)
            ),
            format!("{}: no certificate", p(&garbage)),
        ),
    ];
    for (tls, want) in cases {
        let (cfg, _) = terminating("127.0.0.1:9".parse().unwrap(), &tls, "");
        let mut check = Proxy::spawn(&cfg, &["--check"]);
        let status = check.wait_exit(Duration::from_secs(10));
        assert_eq!(status.code(), Some(1), "{tls}");
        let err = check.stderr_text();
        assert!(err.contains(&want), "want {want:?} in:\n{err}");
        // Starting fails the same way, with a one-line reason.
        let mut run = Proxy::spawn(&cfg, &[]);
        assert_eq!(run.wait_exit(Duration::from_secs(10)).code(), Some(1));
        assert!(run.stderr_text().contains(&want));
    }
}

#[test]
fn tcp_listener_terminates_tls_and_relays_both_ways_with_half_close() {
    let echo = support::TcpPeer::start("echo");
    let mut pki = Pki::new("l4");
    let server = localhost_leaf(&mut pki);
    let (listen, admin) = (free_port(), free_port());
    let cfg = format!(
        "[runtime]\nworkers = 2\n\n[admin]\nbind = \"127.0.0.1:{admin}\"\n\n\
         [[listeners]]\nname = \"l4\"\nbind = \"127.0.0.1:{listen}\"\nprotocol = \"tcp\"\ncluster = \"echo\"\n\n\
         [listeners.tls]\ncert = \"{}\"\nkey = \"{}\"\n\n\
         [[clusters]]\nname = \"echo\"\nendpoints = [\"{}\"]\n",
        p(&server.cert),
        p(&server.key),
        echo.addr()
    );
    let _proxy = Proxy::start(&cfg);
    let mut s = tls_connect(addr(listen), "localhost", client_config(&pki.ca, None)).unwrap();
    // 4 MiB through the TLS relay, echoed back, checked.
    let data: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
    let mut back = vec![0u8; data.len()];
    let mut sent = 0;
    let mut got = 0;
    s.sock.set_nonblocking(false).unwrap();
    while got < data.len() {
        if sent < data.len() {
            let n = (data.len() - sent).min(64 * 1024);
            s.write_all(&data[sent..sent + n]).unwrap();
            s.flush().unwrap();
            sent += n;
        }
        let n = s.read(&mut back[got..]).unwrap();
        assert!(n > 0, "closed after {got} bytes");
        got += n;
    }
    assert!(back == data, "echoed bytes differ");
    // Half-close: close_notify from the client ends the upstream direction; the echo peer
    // then closes, and the client reads a clean end (close_notify from the proxy).
    s.conn.send_close_notify();
    s.conn.complete_io(&mut s.sock).unwrap();
    let mut rest = Vec::new();
    let r = s.read_to_end(&mut rest);
    assert!(r.is_ok(), "no clean TLS end: {r:?}");
}

#[test]
fn fresh_connections_with_the_request_in_the_clients_first_flight_never_stall() {
    let up = Upstream::start(&[]);
    let mut pki = Pki::new("flight");
    let server = localhost_leaf(&mut pki);
    let (cfg, at) = terminating(up.addr(), &cert_and_key(&server), "");
    let _proxy = Proxy::start(&cfg);
    let client = client_config(&pki.ca, None);
    let mut stalls = Vec::new();
    for i in 0..1500 {
        let tcp = TcpStream::connect(at).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut conn =
            rustls::ClientConnection::new(client.clone(), "localhost".try_into().unwrap()).unwrap();
        // Queued before the handshake: rustls sends it right after its Finished.
        conn.writer()
            .write_all(b"GET /size/3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut s = rustls::StreamOwned::new(conn, tcp);
        let mut got = Vec::new();
        match s.read_to_end(&mut got) {
            Ok(_) if got.ends_with(b"abc") => {}
            other => stalls.push((i, format!("{other:?}"), got.len())),
        }
    }
    assert!(
        stalls.is_empty(),
        "{} stalls: {:?}",
        stalls.len(),
        &stalls[..stalls.len().min(5)]
    );
}

#[test]
fn ringway_load_drives_https_keep_alive_and_full_handshakes_without_errors() {
    let load = Path::new(env!("CARGO_BIN_EXE_ringway")).with_file_name("ringway-load");
    if !load.exists() {
        panic!("{} not built: run `cargo test --workspace`", load.display());
    }
    let up = Upstream::start(&[]);
    let mut pki = Pki::new("load");
    let server = localhost_leaf(&mut pki);
    let (cfg, at) = terminating(up.addr(), &cert_and_key(&server), "");
    let proxy = Proxy::start(&cfg);
    let url = format!("https://127.0.0.1:{}/size/10", at.port());
    for extra in [&[][..], &["-H", "Connection: close", "--no-resumption"][..]] {
        let out = Command::new(&load)
            .arg(&url)
            .args(["--cacert", &p(&pki.ca), "--sni", "localhost"])
            .args([
                "-c",
                "4",
                "-t",
                "1",
                "-d",
                "1s",
                "--timeout",
                "3s",
                "--json",
            ])
            .args(extra)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{extra:?}: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        metric(
            &proxy,
            "ringway_tls_handshakes_total{listener=\"edge\",result=\"ok\"}"
        ) > 10.0
    );
}

fn openssl_available() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn openssl_s_client_with_a_client_certificate_gets_through_mtls() {
    if !openssl_available() {
        eprintln!("openssl not installed: skipped (.ci/run installs it)");
        return;
    }
    let up = Upstream::start(&[]);
    let mut pki = Pki::new("openssl");
    let server = localhost_leaf(&mut pki);
    let client = pki.leaf(
        "client",
        &LeafSpec {
            spiffe: Some(FRONTEND),
            ..Default::default()
        },
    );
    let (cfg, at) = terminating(
        up.addr(),
        &format!(
            "cert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\nidentities = [\"{FRONTEND}\"]",
            p(&server.cert),
            p(&server.key),
            p(&pki.ca)
        ),
        "",
    );
    let _proxy = Proxy::start(&cfg);
    let run = |with_cert: bool| {
        let mut cmd = Command::new("openssl");
        cmd.args(["s_client", "-quiet", "-connect", &at.to_string()])
            .args(["-servername", "localhost", "-CAfile", &p(&pki.ca)])
            .args(["-verify_return_error"]);
        if with_cert {
            cmd.args(["-cert", &p(&client.cert), "-key", &p(&client.key)]);
        }
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"GET /size/4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let ok = run(true);
    assert!(
        ok.starts_with("HTTP/1.1 200") && ok.ends_with("abcd"),
        "{ok}"
    );
    let refused = run(false);
    assert!(!refused.contains("200 OK"), "{refused}");
}

#[test]
fn tls_sent_to_a_plaintext_port_gets_400_and_bad_keys_are_named_at_check() {
    let up = Upstream::start(&[]);
    let (listen, admin) = (free_port(), free_port());
    let plain = format!(
        "[runtime]\nworkers = 1\n\n[admin]\nbind = \"127.0.0.1:{admin}\"\n\n\
         [[listeners]]\nname = \"plain\"\nbind = \"127.0.0.1:{listen}\"\ncluster = \"app\"\n\n\
         [[clusters]]\nname = \"app\"\nendpoints = [\"{}\"]\n",
        up.addr()
    );
    let _proxy = Proxy::start(&plain);
    let mut pki = Pki::new("plain");
    let r = tls_connect(addr(listen), "localhost", client_config(&pki.ca, None));
    assert!(r.is_err(), "a TLS handshake succeeded on a plaintext port");
    let mut raw = TcpStream::connect(addr(listen)).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    raw.write_all(&[
        0x16, 0x03, 0x01, 0x00, 0x30, 0x01, 0x00, 0x00, 0x2c, 0x03, 0x03,
    ])
    .unwrap();
    let mut got = Vec::new();
    let _ = raw.read_to_end(&mut got);
    assert!(
        got.starts_with(b"HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    // A key type rustls cannot sign with, named at --check.
    if !openssl_available() {
        return;
    }
    let leaf = pki.leaf("x", &LeafSpec::default());
    let ed448 = pki.dir().join("ed448.key");
    let made = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ED448", "-out"])
        .arg(&ed448)
        .output()
        .unwrap();
    assert!(made.status.success());
    let (cfg, _) = terminating(
        up.addr(),
        &format!("cert = \"{}\"\nkey = \"{}\"", p(&leaf.cert), p(&ed448)),
        "",
    );
    let mut check = Proxy::spawn(&cfg, &["--check"]);
    assert_eq!(check.wait_exit(Duration::from_secs(10)).code(), Some(1));
    let err = check.stderr_text();
    assert!(
        err.contains(&format!("{}: unsupported private key", p(&ed448))),
        "{err}"
    );
}

#[test]
fn an_expired_upstream_certificate_is_refused() {
    let app = Upstream::start(&[]);
    let mut pki = Pki::new("expired-up");
    let server = pki.leaf(
        "server",
        &LeafSpec {
            names: &["127.0.0.1"],
            expired: true,
            ..Default::default()
        },
    );
    let (term_cfg, term_at) = terminating(app.addr(), &cert_and_key(&server), "");
    let _term = Proxy::start(&term_cfg);
    let (listen, admin) = (free_port(), free_port());
    let text = format!(
        "[runtime]\nworkers = 1\n\n[admin]\nbind = \"127.0.0.1:{admin}\"\n\n\
         [[listeners]]\nname = \"edge\"\nbind = \"127.0.0.1:{listen}\"\ncluster = \"up\"\n\n\
         [[clusters]]\nname = \"up\"\nendpoints = [\"{term_at}\"]\n\n[clusters.tls]\nca = \"{}\"\n",
        p(&pki.ca)
    );
    let proxy = Proxy::start(&text);
    let r = support::Client::connect(addr(listen)).get("/size/1", "up");
    assert_eq!(r.status, 502);
    assert!(
        metric(
            &proxy,
            "ringway_upstream_tls_handshakes_total{cluster=\"up\",result=\"certificate_rejected\"}"
        ) >= 1.0
    );
}

#[test]
fn tls_after_a_proxy_protocol_header_uses_the_announced_client() {
    let up = Upstream::start(&[]);
    let mut pki = Pki::new("pp");
    let server = localhost_leaf(&mut pki);
    let (cfg, at) = terminating(up.addr(), &cert_and_key(&server), "");
    let cfg = cfg.replace(
        "cluster = \"app\"\n\n[listeners.tls]",
        "cluster = \"app\"\nproxy_protocol = true\n\n[listeners.tls]",
    );
    let _proxy = Proxy::start(&cfg);
    let mut tcp = TcpStream::connect(at).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The header and the ClientHello may arrive together: both must be read right.
    let conn = rustls::ClientConnection::new(
        client_config(&pki.ca, None),
        "localhost".try_into().unwrap(),
    )
    .unwrap();
    let mut hello = Vec::new();
    let mut conn = conn;
    conn.write_tls(&mut hello).unwrap();
    let mut first = b"PROXY TCP4 198.51.100.7 127.0.0.1 40000 443\r\n".to_vec();
    first.extend_from_slice(&hello);
    tcp.write_all(&first).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let (head, body) = get(&mut s, "/headers").unwrap();
    assert_eq!(status_of(&head), 200, "{head}");
    let text = String::from_utf8_lossy(&body).to_ascii_lowercase();
    assert!(text.contains("x-forwarded-for: 198.51.100.7"), "{text}");
    assert!(text.contains("x-forwarded-proto: https"), "{text}");
}
