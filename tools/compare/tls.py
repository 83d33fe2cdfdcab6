"""The TLS scenarios of tools/compare/compare.py (https-small, https-handshake, mesh-pair), and their report.

* https-small: HTTPS keep-alive, GET /small (the `small` scenario's 2-byte body) through each
  proxy terminating TLS, `wrk` over https with --tls-connections; the proxy's CPU µs per
  request.
* https-handshake: one full TLS 1.3 handshake per request: `wrk -H "Connection: close"`
  (wrk reconnects after every response) against a second listener of each proxy that has
  session tickets and the session cache off, so nothing can be resumed (checked per proxy:
  the handshakes wrk makes there are captured on the loopback and none offers or gets a
  PSK); the proxy's CPU µs per handshake (= per request).
* mesh-pair: a sidecar pair per proxy: wrk → outbound proxy (plaintext in, mTLS out with the
  frontend's certificate, SPIFFE URI SAN spiffe://cluster.local/ns/shop/sa/frontend) →
  inbound proxy (mTLS in: client certificate required, chained to the CA and checked for the
  frontend's identity; XFCC sanitize + set; plaintext out) → the upstream. Closed loop (wrk,
  CPU µs per request summed over both proxies) and open loop (`ringway-load -R`, latency
  added over the direct-to-upstream path at one fixed rate).

Every proxy gets the same throw-away PKI (made with the openssl CLI in the temp dir: an ECDSA
P-256 CA, server and client certificates), TLS 1.3 only, and the clients offer only
TLS_AES_128_GCM_SHA256 with an X25519 key share (OPENSSL_CONF for wrk and openssl s_client;
the nginx and HAProxy clients of the pair are configured so; Envoy's BoringSSL client prefers
it anyway; Ringway's rustls client cannot be restricted, and what each pair negotiated is
read off the wire and reported). Processes are started with the caller's `spawn` (stopped on
exit) and stopped here when the part is done; every run is bounded (wrk/ringway-load
durations, subprocess deadlines, socket timeouts).
"""

from __future__ import annotations

import dataclasses
import http.client
import os
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import extras
from procstat import CLK_TCK, cpu_ticks, process_tree, rss_kib

TLS_SCENARIOS = ("https-small", "https-handshake", "mesh-pair")
TLS_PEERS = ("ringway", "ringway-base", "nginx", "haproxy", "envoy")
CIPHER = "TLS_AES_128_GCM_SHA256"
GROUP = "X25519"
SERVER_NAME = "bench.ringway.test"
MESH_SNI = "cart.shop.svc.cluster.local"
CLIENT_ID = "spiffe://cluster.local/ns/shop/sa/frontend"
SERVER_ID = "spiffe://cluster.local/ns/shop/sa/cart"
INTRUDER_ID = "spiffe://cluster.local/ns/shop/sa/intruder"
SMALL_BODY = b"ok"
CLOSE = ("-H", "Connection: close")

CIPHER_NAMES = {0x1301: "TLS_AES_128_GCM_SHA256", 0x1302: "TLS_AES_256_GCM_SHA384",
                0x1303: "TLS_CHACHA20_POLY1305_SHA256"}
GROUP_NAMES = {0x0017: "P-256", 0x0018: "P-384", 0x0019: "P-521", 0x001D: "X25519", 0x001E: "X448",
               0x11EC: "X25519MLKEM768", 0x11EB: "SecP256r1MLKEM768", 0x6399: "X25519Kyber768Draft00"}
HRR_RANDOM = bytes.fromhex("CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")


# ---------------------------------------------------------------- certificates


CLIENT_OPENSSL_CNF = f"""# Client side of tools/compare/tls.py (wrk, openssl s_client): TLS 1.3, one suite, one group.
openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
MinProtocol = TLSv1.3
Ciphersuites = {CIPHER}
Groups = {GROUP}
"""


HAPROXY_OPENSSL_CNF = """# HAProxy's HTTPS process in tools/compare/tls.py: no TLS 1.3 session tickets at all.
openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
NumTickets = 0
"""


def _openssl(*argv: str) -> None:
    p = subprocess.run(["openssl", *argv], capture_output=True, text=True, timeout=30, check=False)
    if p.returncode != 0:
        sys.exit(f"error: openssl {' '.join(argv[:3])} ... failed:\n{p.stdout}{p.stderr}")


def make_pki(d: Path) -> Path:
    """A throw-away CA and ECDSA P-256 leaf certificates in d (PKCS#8 keys; HAProxy's
    cert+key bundles `*-full.pem`), and the client OpenSSL config; returns d."""
    d.mkdir(mode=0o700)
    key = lambda name: _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",  # noqa: E731
                                "-out", str(d / f"{name}.key"))
    key("ca")
    _openssl("req", "-x509", "-new", "-key", str(d / "ca.key"), "-sha256", "-days", "2",
             "-subj", "/O=ringway compare/CN=ringway compare throw-away CA",
             "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-addext", "subjectKeyIdentifier=hash", "-out", str(d / "ca.pem"))
    leaves = {
        "server": ("bench", "serverAuth", f"DNS:{SERVER_NAME}, IP:127.0.0.1"),
        "cart": ("cart", "serverAuth", f"URI:{SERVER_ID}, DNS:{MESH_SNI}"),
        "frontend": ("frontend", "clientAuth", f"URI:{CLIENT_ID}"),
        "intruder": ("intruder", "clientAuth", f"URI:{INTRUDER_ID}"),
    }
    for n, (cn, eku, san) in leaves.items():
        key(n)
        _openssl("req", "-new", "-key", str(d / f"{n}.key"), "-subj", f"/CN={cn}", "-out", str(d / f"{n}.csr"))
        (d / f"{n}.ext").write_text(
            "basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n"
            f"extendedKeyUsage = {eku}\nsubjectAltName = {san}\nsubjectKeyIdentifier = hash\n"
            "authorityKeyIdentifier = keyid:always\n")
        _openssl("x509", "-req", "-in", str(d / f"{n}.csr"), "-CA", str(d / "ca.pem"), "-CAkey", str(d / "ca.key"),
                 "-set_serial", "0x" + os.urandom(12).hex(), "-days", "1", "-sha256",
                 "-extfile", str(d / f"{n}.ext"), "-out", str(d / f"{n}.pem"))
        (d / f"{n}-full.pem").write_text((d / f"{n}.pem").read_text() + (d / f"{n}.key").read_text())
    (d / "client-openssl.cnf").write_text(CLIENT_OPENSSL_CNF)
    (d / "haproxy-openssl.cnf").write_text(HAPROXY_OPENSSL_CNF)
    return d


def client_env(certs: Path) -> dict[str, str]:
    return {**os.environ, "OPENSSL_CONF": str(certs / "client-openssl.cnf")}


def client_ctx(certs: Path, cert: str | None = None, alpn: list[str] | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    if cert:
        ctx.load_cert_chain(str(certs / f"{cert}.pem"), str(certs / f"{cert}.key"))
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


# What the checks offer the inbound sidecars: Istio's value first (Envoy's inbound filter
# chain matches on it, as Istio's does), then http/1.1 (what the others select).
CHECK_ALPN = ["istio-http/1.1", "http/1.1"]


# ---------------------------------------------------------------- processes


@dataclasses.dataclass
class HttpsTarget:
    name: str
    https_port: int  # session tickets as the proxy's default (https-small)
    full_port: int  # no resumption (https-handshake)
    proc: subprocess.Popen
    log: Path


@dataclasses.dataclass
class Pair:
    name: str
    out_port: int
    in_port: int
    out_proc: subprocess.Popen
    in_proc: subprocess.Popen
    logs: tuple[Path, Path]

    @property
    def procs(self) -> list[subprocess.Popen]:
        return [self.out_proc, self.in_proc]


def wait_tcp(port: int, proc: subprocess.Popen, what: str, log: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"error: {what} exited with {proc.returncode} while starting; log {log}:\n" + _tail(log))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"error: {what} not listening on {port} after {timeout:.0f}s; log {log}:\n" + _tail(log))


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def ringway_config_ok(exe: str, conf: Path) -> bool:
    """`ringway --check`: False for a build without TLS (an older --ringway-base)."""
    p = subprocess.run([exe, "--config", str(conf), "--check"], capture_output=True, text=True, timeout=30,
                       check=False)
    return p.returncode == 0


def start_one(kind: str, exe: str, template: str, dest: Path, log: Path, h, workers: int,
              ports: list[int], **values) -> subprocess.Popen | None:
    """Renders templates/tls/<template>, starts it and waits until ports listen (Ringway and
    Envoy: also until their admin /ready). None: a Ringway build that rejects the config."""
    admin = h.free_port()
    conf = h.render(f"tls/{template}", dest, admin_port=admin, workers=workers, cipher=CIPHER, group=GROUP,
                    **values)
    if kind in ("ringway", "ringway-base"):
        if not ringway_config_ok(exe, conf):
            return None
        proc = h.spawn([exe, "--config", str(conf)], log)
        h.wait_http(f"http://127.0.0.1:{admin}/ready", proc, log, f"{kind} ({template})")
    elif kind == "nginx":
        proc = h.start_nginx(exe, conf, values["tmp"], log)
    elif kind == "haproxy":
        # HAProxy has no setting for the number of TLS 1.3 tickets; OpenSSL's NumTickets through
        # OPENSSL_CONF stops the (stateful, never resumable here) tickets it would send.
        env = {**os.environ, "OPENSSL_CONF": str(values["certs"] / "haproxy-openssl.cnf")}
        proc = h.spawn([exe, "-db", "-f", str(conf)], log, env if template.endswith("https.cfg") else None)
    elif kind == "envoy":
        argv = [exe, "-c", str(conf), "--concurrency", str(workers), "--disable-hot-restart", "--log-level", "warn"]
        proc = h.spawn(argv, log)
        h.wait_http(f"http://127.0.0.1:{admin}/ready", proc, log, f"envoy ({template})", timeout=30)
    else:
        raise ValueError(kind)
    for port in ports:
        wait_tcp(port, proc, f"{kind} ({template})", log)
    return proc


TEMPLATE_EXT = {"ringway": "toml", "ringway-base": "toml", "nginx": "conf", "haproxy": "cfg", "envoy": "yaml"}


def _tpl(kind: str, role: str) -> str:
    base = "ringway" if kind == "ringway-base" else kind
    return f"{base}-{role}.{TEMPLATE_EXT[kind]}"


def start_https(kind: str, exe: str, tmp: Path, h, certs: Path, upstream_port: int, workers: int) -> HttpsTarget | None:
    https_port, full_port = h.free_port(), h.free_port()
    log = tmp / f"tls-{kind}-https.out"
    proc = start_one(kind, exe, _tpl(kind, "https"), tmp / f"tls-{kind}-https.{TEMPLATE_EXT[kind]}", log, h,
                     workers, [https_port, full_port], https_port=https_port, full_port=full_port,
                     upstream_port=upstream_port, certs=certs, tmp=tmp, user_line=h.nginx_user_line())
    return HttpsTarget(kind, https_port, full_port, proc, log) if proc else None


def start_pair(kind: str, exe: str, tmp: Path, h, certs: Path, upstream_port: int, workers: int) -> Pair | None:
    out_port, in_port = h.free_port(), h.free_port()
    common = {"out_port": out_port, "in_port": in_port, "upstream_port": upstream_port, "certs": certs,
              "tmp": tmp, "user_line": h.nginx_user_line(), "sni": MESH_SNI, "client_id": CLIENT_ID,
              "server_id": SERVER_ID}
    ext = TEMPLATE_EXT[kind]
    in_log, out_log = tmp / f"mesh-{kind}-inbound.out", tmp / f"mesh-{kind}-outbound.out"
    inbound = start_one(kind, exe, _tpl(kind, "inbound"), tmp / f"mesh-{kind}-inbound.{ext}", in_log, h, workers,
                        [] if kind in ("ringway", "ringway-base", "envoy") else [in_port], **common)
    if inbound is None:
        return None
    outbound = start_one(kind, exe, _tpl(kind, "outbound"), tmp / f"mesh-{kind}-outbound.{ext}", out_log, h,
                         workers, [out_port], **common)
    if outbound is None:
        h.stop_one(inbound)
        return None
    return Pair(kind, out_port, in_port, outbound, inbound, (out_log, in_log))


# ---------------------------------------------------------------- requests and checks


class _TlsConnection(http.client.HTTPConnection):
    """HTTPS to 127.0.0.1 with a chosen server name (SNI and the name the certificate is
    checked against; None: the IP address, which sends no SNI)."""

    def __init__(self, port: int, ctx: ssl.SSLContext, server_name: str | None, timeout: float):
        super().__init__("127.0.0.1", port, timeout=timeout)
        self._ctx, self._server_name = ctx, server_name

    def connect(self) -> None:
        super().connect()
        self.sock = self._ctx.wrap_socket(self.sock, server_hostname=self._server_name or "127.0.0.1")


def request(port: int, path: str, ctx: ssl.SSLContext | None = None, headers: dict[str, str] | None = None,
            server_name: str | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    """One GET on a fresh connection (TLS with ctx); raises OSError/ssl errors/HTTPException."""
    if ctx is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    else:
        conn = _TlsConnection(port, ctx, server_name, timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def expect_ok(what: str, port: int, ctx: ssl.SSLContext | None, path: str = "/small", tries: int = 30) -> None:
    """200 with the small body, within a few seconds (a proxy may still be connecting)."""
    last = ""
    for _ in range(tries):
        try:
            status, body = request(port, path, ctx)
            if status == 200 and body == SMALL_BODY:
                return
            last = f"HTTP {status} and {len(body)} bytes {body[:80]!r}"
        except (OSError, http.client.HTTPException) as e:
            last = f"{type(e).__name__}: {e}"
        time.sleep(0.2)
    sys.exit(f"error: {what} answered {path} with {last} (expected 200 and {SMALL_BODY!r})")


def rejected(port: int, ctx: ssl.SSLContext) -> str:
    """How the inbound sidecar turns a client away ('' = it answered 200: not rejected)."""
    try:
        status, _ = request(port, "/small", ctx, server_name=MESH_SNI)
    except ssl.SSLError as e:
        return f"TLS error ({e.reason or e.__class__.__name__})"
    except (OSError, http.client.HTTPException) as e:
        return f"closed ({type(e).__name__})"
    return "" if status == 200 else f"HTTP {status}"


# ---------------------------------------------------------------- what is on the wire


@dataclasses.dataclass
class Hello:
    """A ClientHello (client=True) or ServerHello seen on the loopback."""

    client: bool
    ciphers: list[int]
    groups: list[int]  # client: key shares offered; server: the key share picked
    version: int = 0  # server: the selected version (supported_versions)
    sni: str = ""
    alpn: list[str] = dataclasses.field(default_factory=list)
    psk: bool = False  # client: offers a PSK (resumption); server: accepted one
    hrr: bool = False


def parse_hello(rec: bytes) -> Hello | None:
    """The first handshake message of a TLS record, if it is a Client/ServerHello."""
    try:
        if rec[0] != 0x16 or rec[5] not in (1, 2):
            return None
        client = rec[5] == 1
        b = rec[9:]
        p = 34
        p += 1 + b[p]  # session id
        if client:
            n = struct.unpack_from("!H", b, p)[0]
            ciphers = [struct.unpack_from("!H", b, p + 2 + i)[0] for i in range(0, n, 2)]
            p += 2 + n
            p += 1 + b[p]  # compression methods
        else:
            ciphers = [struct.unpack_from("!H", b, p)[0]]
            p += 3
        h = Hello(client, ciphers, [], hrr=not client and b[2:34] == HRR_RANDOM)
        end = p + 2 + struct.unpack_from("!H", b, p)[0]
        p += 2
        while p + 4 <= min(end, len(b)):
            typ, n = struct.unpack_from("!HH", b, p)
            data = b[p + 4 : p + 4 + n]
            p += 4 + n
            if typ == 43:
                h.version = struct.unpack_from("!H", data, 0 if not client else 1)[0]
            elif typ == 51:
                if client:
                    q = 2
                    while q + 4 <= len(data):
                        g, kn = struct.unpack_from("!HH", data, q)
                        h.groups.append(g)
                        q += 4 + kn
                else:
                    h.groups.append(struct.unpack_from("!H", data, 0)[0])
            elif typ == 0 and client and len(data) > 5:
                h.sni = data[5 : 5 + struct.unpack_from("!H", data, 3)[0]].decode("ascii", "replace")
            elif typ == 16 and client:
                q = 2
                while q < len(data):
                    h.alpn.append(data[q + 1 : q + 1 + data[q]].decode("ascii", "replace"))
                    q += 1 + data[q]
            elif typ == 41:
                h.psk = True
        return h
    except (IndexError, struct.error):
        return None


def sniff(port: int, action, seconds: float = 3.0, want: int = 1) -> tuple[list[Hello], list[Hello], str, object]:
    """Runs action() while capturing the loopback (AF_PACKET, needs root or CAP_NET_RAW);
    returns the ClientHellos sent to port, the ServerHellos sent from it, '' or why nothing
    could be captured, and what action returned. Stops after `want` ServerHellos or seconds."""
    try:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        s.bind(("lo", 0))
    except (OSError, AttributeError) as e:
        return [], [], f"no capture ({e})", action()
    out: list[object] = [None]
    th = threading.Thread(target=lambda: out.__setitem__(0, action()), daemon=True)
    clients: list[Hello] = []
    servers: list[Hello] = []
    s.settimeout(0.2)
    th.start()
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and len(servers) < want:
            try:
                pkt, addr = s.recvfrom(65535)
            except TimeoutError:
                if not th.is_alive():
                    break
                continue
            if addr[2] == socket.PACKET_OUTGOING or len(pkt) < 14 + 20 + 20:
                continue  # on lo each packet shows up twice: outgoing and host
            ip = pkt[14:]
            if ip[0] >> 4 != 4 or ip[9] != 6:
                continue
            ihl = (ip[0] & 15) * 4
            sport, dport = struct.unpack_from("!HH", ip, ihl)
            if port not in (sport, dport):
                continue
            payload = ip[ihl + (ip[ihl + 12] >> 4) * 4 : struct.unpack_from("!H", ip, 2)[0]]
            hello = parse_hello(payload) if len(payload) > 9 else None
            if hello and hello.client and dport == port:
                clients.append(hello)
            elif hello and not hello.client and sport == port:
                servers.append(hello)
    finally:
        s.close()
    th.join(timeout=30)
    return clients, servers, "", out[0]


def s_client(port: int, certs: Path, sess_in: Path | None = None, sess_out: Path | None = None) -> dict:
    """`openssl s_client` (the client OpenSSL config) sending one GET /small with Connection:
    close: protocol, cipher, group, verify result, session tickets received, reused or new."""
    argv = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", SERVER_NAME,
            "-CAfile", str(certs / "ca.pem"), "-verify_return_error", "-verify_hostname", SERVER_NAME, "-ign_eof"]
    if sess_in:
        argv += ["-sess_in", str(sess_in)]
    if sess_out:
        argv += ["-sess_out", str(sess_out)]
    req = f"GET /small HTTP/1.1\r\nHost: {SERVER_NAME}\r\nConnection: close\r\n\r\n"
    try:
        p = subprocess.run(argv, input=req, capture_output=True, text=True, timeout=15, check=False,
                           env=client_env(certs))
        out = p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
    r = {"tickets": out.count("Post-Handshake New Session Ticket arrived"), "status": ""}
    for line in out.splitlines():
        line = line.strip()
        if line.startswith(("New, ", "Reused, ")):
            r["reused"] = line.startswith("Reused")
            parts = [x.strip() for x in line.split(",")]
            r["protocol"] = parts[1]
            r["cipher"] = parts[2].replace("Cipher is ", "")
        elif line.startswith(("Server Temp Key:", "Negotiated TLS1.3 group:")):
            r["group"] = line.split(":", 1)[1].split(",")[0].strip()
        elif line.startswith("Verify return code:"):
            r["verify"] = line.split(":", 1)[1].strip()
        elif line.startswith("HTTP/1.1 ") and not r["status"]:
            r["status"] = line
    return r


# ---------------------------------------------------------------- measurement


@dataclasses.dataclass
class TlsSample:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float  # per request, summed over the measured processes
    user_us: float
    sys_us: float
    parts_us: list[float]  # per process group (pair: outbound, inbound)
    rss_mib: float
    upstream_conns: int  # connections the upstream nginx accepted during the run
    other_conns: int  # other loopback connections accepted (TCP PassiveOpens − upstream_conns)
    non2xx: int
    socket_errors: int
    error_detail: str


@dataclasses.dataclass
class LoadTarget:
    """What the open-loop run drives: a pair's outbound port, or the upstream (no processes)."""

    name: str
    port: int
    procs: list[subprocess.Popen]


@dataclasses.dataclass
class MeshLat:
    rate: int
    rps: float
    p50_us: float
    p99_us: float
    p999_us: float
    cpu_us: float  # nan for direct
    errors: int
    unsent: int


def passive_opens() -> int:
    """TCP PassiveOpens of this network namespace (/proc/net/snmp), -1 if unreadable."""
    try:
        rows = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Tcp:")]
        return int(rows[1][rows[0].index("PassiveOpens")])
    except (OSError, ValueError, IndexError):
        return -1


def measure_wrk(h, procs: list[subprocess.Popen], upstream, url: str, connections: int, seconds: int,
                extra: tuple[str, ...], env: dict[str, str]) -> TlsSample:
    trees = [process_tree(p.pid) for p in procs]
    accepts0 = h.upstream_accepts(upstream)
    opens0 = passive_opens()
    before = [cpu_ticks(t) for t in trees]
    res = h.run_wrk(h.wrk, url, connections, seconds, extra, env)
    after = [cpu_ticks(t) for t in trees]
    opens1 = passive_opens()
    accepts1 = h.upstream_accepts(upstream)
    per = 1e6 / CLK_TCK / max(res.requests, 1)
    user = sum(a[0] - b[0] for a, b in zip(after, before)) * per
    syst = sum(a[1] - b[1] for a, b in zip(after, before)) * per
    up = accepts1 - accepts0 - 1 if accepts0 >= 0 and accepts1 >= 0 else -1
    return TlsSample(
        requests=res.requests, seconds=res.seconds, rps=res.rps, p50_ms=res.p50_ms, p99_ms=res.p99_ms,
        cpu_us=user + syst, user_us=user, sys_us=syst,
        parts_us=[((a[0] - b[0]) + (a[1] - b[1])) * per for a, b in zip(after, before)],
        rss_mib=sum(rss_kib(t) for t in trees) / 1024,
        upstream_conns=up,
        other_conns=opens1 - opens0 - max(up, 0) if opens0 >= 0 and opens1 >= 0 else -1,
        non2xx=res.non2xx, socket_errors=res.socket_errors, error_detail=res.error_detail,
    )


def measure_open_loop(load: str, procs: list[subprocess.Popen], port: int, rate: int, conns: int,
                      seconds: int) -> MeshLat:
    url = f"http://127.0.0.1:{port}/small"
    extras.run_load(load, url, ["-R", str(rate), "-c", str(conns), "-d", "1s"], 1)  # warm-up
    trees = [process_tree(p.pid) for p in procs]
    before = [cpu_ticks(t) for t in trees]
    j = extras.run_load(load, url, ["-R", str(rate), "-c", str(conns), "-d", f"{seconds}s"], seconds)
    after = [cpu_ticks(t) for t in trees]
    lat = j.get("latency_us", {})
    reqs = max(int(j.get("requests", 0)), 1)
    ticks = sum((a[0] - b[0]) + (a[1] - b[1]) for a, b in zip(after, before))
    nan = float("nan")
    return MeshLat(
        rate=rate, rps=float(j.get("requests_per_sec", 0.0)), p50_us=float(lat.get("p50", nan)),
        p99_us=float(lat.get("p99", nan)), p999_us=float(lat.get("p99_9", nan)),
        cpu_us=ticks * 1e6 / CLK_TCK / reqs if procs else nan,
        errors=int(j.get("errors", {}).get("total", 0)) + int(j.get("non_2xx", 0)),
        unsent=int(j.get("unsent", 0)),
    )


# ---------------------------------------------------------------- checks per proxy


def check_https(t: HttpsTarget, certs: Path, h, tmp: Path) -> dict:
    """Bodies over both listeners, what s_client negotiates, tickets and resumption on each,
    and what wrk's own handshakes look like on the wire (PSK offered / accepted)."""
    ctx = client_ctx(certs)
    expect_ok(f"{t.name} (https)", t.https_port, ctx)
    expect_ok(f"{t.name} (https, no resumption)", t.full_port, ctx)
    info: dict = {}
    for label, port in (("default", t.https_port), ("full", t.full_port)):
        sess = tmp / f"tls-{t.name}-{label}.sess"
        first = s_client(port, certs, sess_out=sess)
        again = s_client(port, certs, sess_in=sess) if sess.exists() and sess.stat().st_size else {}
        info[label] = {"s_client": first, "resumed": again.get("reused")}
        if "200" not in first.get("status", "") or first.get("verify") != "0 (ok)":
            sys.exit(f"error: {t.name}: openssl s_client on port {port} got {first}")
        # wrk itself: 2 connections (wrk -t2 needs 2), Connection: close, for about a second.
        url = f"https://127.0.0.1:{port}/small"
        clients, servers, why, _ = sniff(
            port, lambda url=url: h.run_wrk(h.wrk, url, 2, 1, CLOSE, client_env(certs)), seconds=4, want=10**9)
        info[label]["wire"] = {
            "why": why, "hellos": len(clients), "psk_offered": sum(c.psk for c in clients),
            "psk_accepted": sum(s.psk for s in servers),
            "server": servers[0] if servers else None, "client": clients[0] if clients else None,
        }
    return info


def check_pair(p: Pair, certs: Path) -> dict:
    """The first request through the pair, captured between the two sidecars (what they
    negotiate), the XFCC the upstream got, and the inbound's answer to no client certificate
    and to a CA-signed certificate with another identity."""
    clients, servers, why, err = sniff(p.in_port, lambda: _first_ok(p), seconds=10)
    if err:
        sys.exit(f"error: {p.name} pair: {err}")
    status, body = request(p.out_port, "/xfcc",
                           headers={"X-Forwarded-Client-Cert": "By=spiffe://evil;URI=spiffe://cluster.local/ns/evil/sa/x"})
    xfcc = body.decode(errors="replace")
    if status != 200 or "frontend" not in xfcc or "evil" in xfcc:
        sys.exit(f"error: {p.name} pair: /xfcc answered HTTP {status} {xfcc!r} (expected the frontend's "
                 "identity set by the inbound sidecar, and the client's fake element removed)")
    no_cert = rejected(p.in_port, client_ctx(certs, None, CHECK_ALPN))
    intruder = rejected(p.in_port, client_ctx(certs, "intruder", CHECK_ALPN))
    direct_ok = rejected(p.in_port, client_ctx(certs, "frontend", CHECK_ALPN))
    if not no_cert or not intruder or direct_ok:
        sys.exit(f"error: {p.name} inbound sidecar: no client cert -> {no_cert or '200'}, intruder -> "
                 f"{intruder or '200'}, frontend's cert -> {direct_ok or '200'} (expected reject, reject, 200)")
    return {"why": why, "client": clients[0] if clients else None, "server": servers[0] if servers else None,
            "xfcc": xfcc, "no_cert": no_cert, "intruder": intruder}


def _first_ok(p: Pair) -> str:
    for _ in range(50):
        try:
            status, body = request(p.out_port, "/small")
            if status == 200 and body == SMALL_BODY:
                return ""
            last = f"HTTP {status} {body[:80]!r}"
        except (OSError, http.client.HTTPException) as e:
            last = f"{type(e).__name__}: {e}"
        time.sleep(0.2)
    return f"GET /small through the pair: {last}"


# ---------------------------------------------------------------- driver


def run_tls(wanted: list[str], exes: dict[str, str], args, tools: dict[str, str], h, tmp: Path, upstream):
    """Runs the asked TLS scenarios; returns (markdown lines, plot panels {title: {name: value}})."""
    certs = make_pki(tmp / "pki")
    env = client_env(certs)
    workers, pair_workers = 2, args.pair_workers
    conns = args.tls_connections or args.connections
    hs_conns = args.handshake_connections or args.connections
    names = [n for n in TLS_PEERS if n in exes]
    notes: list[str] = []
    results: dict[tuple[str, str], list[TlsSample]] = {}
    checks: dict[str, dict] = {}
    pair_checks: dict[str, dict] = {}
    lat: dict[str, list[MeshLat]] = {}
    rotate = lambda xs, rnd: xs[rnd % len(xs):] + xs[: rnd % len(xs)]  # noqa: E731

    https_wanted = [s for s in wanted if s != "mesh-pair"]
    if https_wanted:
        targets = []
        for n in names:
            t = start_https(n, exes[n], tmp, h, certs, upstream.port, workers)
            if t is None:
                notes.append(f"{n} skipped for HTTPS: its build rejects templates/tls/ringway-https.toml (`--check`).")
                continue
            checks[n] = check_https(t, certs, h, tmp)
            targets.append(t)
        for rnd in range(args.rounds):
            for sc in https_wanted:
                for t in rotate(targets, rnd):
                    port, c, extra = ((t.https_port, conns, ()) if sc == "https-small"
                                      else (t.full_port, hs_conns, CLOSE))
                    url = f"https://127.0.0.1:{port}/small"
                    if args.warmup:
                        h.run_wrk(h.wrk, url, c, args.warmup, extra, env)
                    s = measure_wrk(h, [t.proc], upstream, url, c, args.duration, extra, env)
                    results.setdefault((t.name, sc), []).append(s)
                    _progress(sc, rnd, t.name, s, notes)
                    if t.proc.poll() is not None:
                        sys.exit(f"error: {t.name} (https) exited ({t.proc.returncode}); log {t.log}:\n" + _tail(t.log))
        for t in targets:
            h.stop_one(t.proc)

    rate, how = 0, ""
    if "mesh-pair" in wanted:
        pairs = []
        for n in names:
            p = start_pair(n, exes[n], tmp, h, certs, upstream.port, pair_workers)
            if p is None:
                notes.append(f"{n} skipped for mesh-pair: its build rejects the templates/tls/ringway-*bound.toml (`--check`).")
                continue
            pair_checks[n] = check_pair(p, certs)
            pairs.append(p)
        for rnd in range(args.rounds):
            for p in rotate(pairs, rnd):
                url = f"http://127.0.0.1:{p.out_port}/small"
                if args.warmup:
                    h.run_wrk(h.wrk, url, conns, args.warmup)
                s = measure_wrk(h, p.procs, upstream, url, conns, args.duration, (), dict(os.environ))
                s.other_conns -= conns  # wrk's own connections to the outbound sidecar
                results.setdefault((p.name, "mesh-pair"), []).append(s)
                _progress("mesh-pair", rnd, p.name, s, notes)
                for proc, log in zip(p.procs, p.logs):
                    if proc.poll() is not None:
                        sys.exit(f"error: {p.name} pair exited ({proc.returncode}); log {log}:\n" + _tail(log))
        load = tools.get("ringway-load")
        if load and pairs:
            if args.mesh_rate:
                rate, how = args.mesh_rate, "given with --mesh-rate"
            else:
                caps = {p.name: statistics.median(s.rps for s in results[(p.name, "mesh-pair")]) for p in pairs}
                slowest = min(caps, key=caps.get)
                rate = max(100, int(caps[slowest] * 0.5 / 100) * 100)
                how = (f"50% of the slowest pair's closed-loop capacity ({slowest}, {caps[slowest]:,.0f} req/s "
                       "with wrk above)")
            load_targets = [LoadTarget("direct", upstream.port, [])] + [
                LoadTarget(p.name, p.out_port, p.procs) for p in pairs]
            for rnd in range(args.rounds):
                for p in rotate(load_targets, rnd):
                    m = measure_open_loop(load, p.procs, p.port, rate, args.latency_connections, args.duration)
                    lat.setdefault(p.name, []).append(m)
                    print(f"mesh-pair open loop round {rnd + 1} {p.name:12} {m.rps:>9,.0f} req/s p50 "
                          f"{m.p50_us:,.0f} p99 {m.p99_us:,.0f} µs cpu {m.cpu_us:.2f} µs/req errors {m.errors}",
                          file=sys.stderr, flush=True)
        elif pairs:
            notes.append("mesh-pair open loop skipped: target/release/ringway-load not built.")
        for p in pairs:
            for proc in p.procs:
                h.stop_one(proc)
    return report(wanted, names, results, checks, pair_checks, lat, rate, how, args, notes,
                  workers, pair_workers, conns, hs_conns)


def _progress(sc: str, rnd: int, name: str, s: TlsSample, notes: list[str]) -> None:
    unit = "handshake" if sc == "https-handshake" else "req"
    if s.error_detail:
        notes.append(f"{name}, {sc}, round {rnd + 1}: wrk reported `{s.error_detail}` ({s.rps:,.0f} req/s).")
    print(f"{sc} round {rnd + 1} {name:12} {s.rps:>9,.0f} req/s  cpu {s.cpu_us:7.2f} µs/{unit} "
          f"(user {s.user_us:.2f}, sys {s.sys_us:.2f})  p99 {s.p99_ms:.3f} ms  upstream conns {s.upstream_conns} "
          f"other conns {s.other_conns}" + (f"  ERRORS: {s.error_detail}" if s.error_detail else ""),
          file=sys.stderr, flush=True)


# ---------------------------------------------------------------- report


def _f(x: float, d: int = 1) -> str:
    return "n/a" if x != x else f"{x:,.{d}f}"  # noqa: PLR0124 - NaN check


def _med(xs) -> float:
    xs = [x for x in xs if x == x]  # noqa: PLR0124
    return statistics.median(xs) if xs else float("nan")


def _hello_server(hello: Hello | None) -> str:
    if hello is None:
        return "not captured"
    v = {0x0304: "TLSv1.3", 0x0303: "TLSv1.2"}.get(hello.version, f"0x{hello.version:04x}" if hello.version else "TLSv1.2")
    g = ", ".join(GROUP_NAMES.get(x, f"0x{x:04x}") for x in hello.groups) or "-"
    return f"{v}, {CIPHER_NAMES.get(hello.ciphers[0], f'0x{hello.ciphers[0]:04x}')}, {g}" + (
        " (after a HelloRetryRequest)" if hello.hrr else "")


def _hello_client(hello: Hello | None) -> str:
    if hello is None:
        return "not captured"
    suites = ", ".join(CIPHER_NAMES.get(x, f"0x{x:04x}") for x in hello.ciphers if x in CIPHER_NAMES)
    tls12 = sum(1 for x in hello.ciphers if x not in CIPHER_NAMES and x not in (0x00FF,) and x & 0x0F0F != 0x0A0A)
    shares = ", ".join(GROUP_NAMES.get(x, f"0x{x:04x}") for x in hello.groups if x & 0x0F0F != 0x0A0A)
    return (f"SNI `{hello.sni or '-'}`; ALPN {', '.join(hello.alpn) or 'none'}; TLS 1.3 suites {suites}"
            + (f" (+{tls12} TLS 1.2 suites)" if tls12 else "") + f"; key shares {shares}")


def _ratio_line(what: str, vals: dict[str, float], target: str) -> list[str]:
    peers = {k: v for k, v in vals.items() if k not in ("ringway", "ringway-base", "direct") and v == v}
    rw = vals.get("ringway", float("nan"))
    if not peers or rw != rw:  # noqa: PLR0124
        return []
    best = min(peers, key=peers.get)
    r = rw / peers[best] if peers[best] > 0 else float("nan")
    return [f"Ringway {what} ÷ best peer ({best}, {_f(peers[best], 2)}): **{_f(r, 2)}×** (target {target}).", ""]


def report(wanted, names, results, checks, pair_checks, lat, rate, how, args, notes, workers, pair_workers,
           conns, hs_conns):
    med = _med
    md = ["## TLS: HTTPS termination and a sidecar mTLS pair", ""]
    md.append(
        "Certificates: a throw-away CA and ECDSA P-256 leaf certificates made with the openssl CLI at "
        f"start (server: DNS `{SERVER_NAME}`, IP 127.0.0.1; mesh inbound: URI `{SERVER_ID}`, DNS "
        f"`{MESH_SNI}`; mesh client: URI `{CLIENT_ID}`), the same files for every proxy. TLS 1.3 only "
        f"everywhere. The clients offer only {CIPHER} with an {GROUP} key share: wrk and openssl s_client "
        "through an OPENSSL_CONF, the nginx and HAProxy sidecars by configuration (nginx and HAProxy "
        "servers are restricted to them too); Envoy (BoringSSL) and Ringway (rustls + aws-lc-rs) cannot "
        "restrict TLS 1.3 suites, so what their clients offer and every pair negotiated is read off the "
        "loopback (tables below). CPU = utime+stime of the proxy processes (both sidecars of a pair) over "
        "the measured wrk run ÷ wrk's request count. "
        f"Threads: {workers} workers per HTTPS proxy (as the other scenarios); {pair_workers} per sidecar "
        "in every pair (Ringway `workers`, nginx `worker_processes`, HAProxy `nbthread`, Envoy "
        "`--concurrency`; Istio's default proxy concurrency is 2), so a pair has twice the threads of the "
        "2-core machine, the same for every pair."
    )
    md.append("")
    for n in notes:
        md.append(f"- {n}")
    if notes:
        md.append("")
    plot: dict[str, dict[str, float]] = {}

    if checks:
        md += ["### Negotiated (HTTPS listeners)", ""]
        md.append(
            "`openssl s_client` once per listener (verified against the CA; GET /small → 200), then once more "
            "with the saved session (`-sess_in`) to see whether the server resumes it; and one second of "
            "`wrk -c2 -H \"Connection: close\"` captured on the loopback: how many of wrk's ClientHellos "
            "offered a PSK (a resumption) and how many the server accepted. The https-handshake listener "
            "must show 0 tickets and 0 accepted PSKs."
        )
        md += ["", "| proxy | listener | protocol, cipher, group (s_client) | tickets sent | s_client reconnect "
               "| wrk handshakes: PSK offered / accepted | wrk's handshake on the wire (server's choice) |",
               "| --- " * 7 + "|"]
        for n, info in checks.items():
            for label in ("default", "full"):
                c = info[label]["s_client"]
                w = info[label]["wire"]
                resumed = {True: "resumed", False: "full handshake",
                           None: "nothing to resume (no ticket)"}[info[label]["resumed"]]
                wire = (w["why"] or f"{w['hellos']} handshakes: {w['psk_offered']} / {w['psk_accepted']}")
                md.append(
                    f"| {n} | {'https-small (defaults)' if label == 'default' else 'https-handshake (no resumption)'} "
                    f"| {c.get('protocol', '?')}, {c.get('cipher', '?')}, {c.get('group', '?')} | {c['tickets']} "
                    f"| {resumed} | {wire} | {_hello_server(w['server']) if not w['why'] else '-'} |")
        md.append("")
        first = next(iter(checks.values()))["full"]["wire"]["client"]
        if first is not None:
            md += [f"wrk's ClientHello: {_hello_client(first)}.", ""]
        offered = {n: i["default"]["wire"] for n, i in checks.items() if not i["default"]["wire"]["why"]}
        if any(w["psk_offered"] for w in offered.values()):
            md += ["wrk resumes TLS sessions whenever the server sends tickets (default listeners: "
                   + ", ".join(f"{n} {w['psk_accepted']} of {w['hellos']} handshakes resumed" for n, w in offered.items())
                   + "), which is why https-handshake runs against listeners without resumption."
                   + (" Ringway's ticket keys are per worker, so about half of wrk's reconnects land on the other "
                      "worker and get a full handshake."
                      if "ringway" in offered and offered["ringway"]["psk_accepted"] < 0.9 * offered["ringway"]["psk_offered"]
                      else "")
                   + (" HAProxy has no per-listener setting for the number of TLS 1.3 tickets: its HTTPS process "
                      "runs with OpenSSL's NumTickets = 0, so its https-small listener sends none either (one "
                      "handshake per keep-alive connection: no difference there)." if "haproxy" in offered else ""),
                   ""]

    for sc, title, unit, target, c in (
        ("https-small", f"https-small: HTTPS keep-alive, GET /small (2 B body), {conns} connections",
         "req", "≤ 0.6×", conns),
        ("https-handshake", f"https-handshake: a full TLS 1.3 handshake per request (wrk -H \"Connection: "
         f"close\"), {hs_conns} connections", "handshake", "≤ 0.8×", hs_conns),
    ):
        if sc not in wanted:
            continue
        md += [f"### {title}", ""]
        if sc == "https-handshake":
            md.append(
                "Each request is a new TCP connection and a full handshake (ECDHE X25519 + ECDSA P-256 "
                "signature by the proxy): wrk reconnects after every `Connection: close` response, and the "
                "listener issues no tickets and keeps no session cache. conns/req = TCP PassiveOpens of the "
                "network namespace during the run, minus the upstream's accepts, ÷ requests (should be 1.00; "
                "the machine is shared, other processes' connections would show up here too).")
            md.append("")
        if sc == "https-small":
            md += ["client conns = TCP PassiveOpens of the network namespace during the run minus the upstream's "
                   f"accepts: wrk's {c} connections (more = reconnects, or other processes on the shared machine).", ""]
        head = (f"| proxy | {'handshakes' if unit == 'handshake' else 'req'}/s | CPU µs/{unit} | user | sys | p50 ms "
                "| p99 ms | RSS MiB | " + ("conns/req | " if unit == "handshake" else "client conns | ")
                + "upstream conns | errors |")
        md += [head, "| --- " * (head.count("|") - 1) + "|"]
        vals = {}
        for n in names:
            ss = results.get((n, sc), [])
            if not ss:
                continue
            vals[n] = med(s.cpu_us for s in ss)
            cells = [n, _f(med(s.rps for s in ss), 0), f"**{_f(vals[n], 2)}**", _f(med(s.user_us for s in ss), 2),
                     _f(med(s.sys_us for s in ss), 2), _f(med(s.p50_ms for s in ss), 3),
                     _f(med(s.p99_ms for s in ss), 3), _f(med(s.rss_mib for s in ss), 1)]
            if unit == "handshake":
                cells.append(_f(med(s.other_conns / max(s.requests, 1) for s in ss), 2))
            else:
                cells.append(str(int(med(s.other_conns for s in ss))))
            cells += [str(int(med(s.upstream_conns for s in ss))),
                      str(sum(s.non2xx + s.socket_errors for s in ss))]
            md.append("| " + " | ".join(cells) + " |")
        md.append("")
        md += _ratio_line(f"CPU µs/{unit}", vals, target)
        md += ["CPU per round: " + "; ".join(f"{n} " + ", ".join(_f(s.cpu_us, 2) for s in results[(n, sc)])
                                             for n in names if results.get((n, sc))) + ".", ""]
        plot[sc] = vals

    if "mesh-pair" in wanted:
        md += [f"### mesh-pair: wrk → outbound sidecar → mTLS → inbound sidecar → upstream, GET /small, {conns} connections", ""]
        md.append(
            "Each pair is two processes of the same proxy: the outbound sidecar (plaintext in; mTLS out "
            f"presenting `{CLIENT_ID}`, SNI, checking the peer) and the inbound sidecar (mTLS in: a client "
            "certificate chained to the CA and naming the frontend is required; x-forwarded-client-cert "
            "sanitized and set; plaintext to the upstream). Ringway: `[clusters.tls]` ca/cert/key/sni/"
            "identities and `[listeners.tls]` cert/key/client_ca/identities with `forward_client_cert = "
            "\"sanitize_set\"`. Envoy: shaped like Istio's sidecars (outbound HCM → `outbound|80||…` cluster "
            "with an UpstreamTlsContext: SNI `outbound_.80_._.…`, ALPN istio-http/1.1, istio, http/1.1, URI "
            "SAN match; inbound tls_inspector + filter chain on Istio's ALPN values, DownstreamTlsContext "
            "with require_client_certificate and a URI SAN match, HCM `forward_client_cert_details: "
            "SANITIZE_SET`). nginx and HAProxy cannot match URI SANs: their outbound checks the inbound's "
            f"DNS SAN (`{MESH_SNI}`), their inbound checks the client's subject CN per request (403 otherwise) "
            "and replaces x-forwarded-client-cert with the subject and a certificate hash. "
            "**Real Istio sidecars also run telemetry (istio.stats, metadata exchange), tracing and access "
            "logs, so this bare Envoy pair is a lower bound of an Istio pair's cost.**"
        )
        md += ["", "Closed loop (wrk, max rate). outbound/inbound = each sidecar's share of CPU µs/req; "
               "mesh conns = connections the inbound accepted during the run (TCP PassiveOpens − upstream "
               "accepts − wrk's connections; 0 = the outbound kept its mTLS connections).", ""]
        head = ("| pair | req/s | CPU µs/req (both) | outbound | inbound | user | sys | p50 ms | p99 ms | RSS MiB (both) "
                "| mesh conns | upstream conns | errors |")
        md += [head, "| --- " * (head.count("|") - 1) + "|"]
        vals = {}
        for n in names:
            ss = results.get((n, "mesh-pair"), [])
            if not ss:
                continue
            vals[n] = med(s.cpu_us for s in ss)
            md.append("| " + " | ".join([
                n, _f(med(s.rps for s in ss), 0), f"**{_f(vals[n], 2)}**", _f(med(s.parts_us[0] for s in ss), 2),
                _f(med(s.parts_us[1] for s in ss), 2), _f(med(s.user_us for s in ss), 2),
                _f(med(s.sys_us for s in ss), 2), _f(med(s.p50_ms for s in ss), 3), _f(med(s.p99_ms for s in ss), 3),
                _f(med(s.rss_mib for s in ss), 1), str(int(med(s.other_conns for s in ss))),
                str(int(med(s.upstream_conns for s in ss))), str(sum(s.non2xx + s.socket_errors for s in ss)),
            ]) + " |")
        md.append("")
        if "ringway" in vals and "envoy" in vals and vals["envoy"] > 0:
            md += [f"Ringway pair CPU/req ÷ Envoy pair: **{_f(vals['ringway'] / vals['envoy'], 2)}×** "
                   "(target ≤ 0.25×).", ""]
        md += _ratio_line("pair CPU µs/req", vals, "—")
        md += ["CPU per round: " + "; ".join(f"{n} " + ", ".join(_f(s.cpu_us, 2) for s in results[(n, "mesh-pair")])
                                             for n in names if results.get((n, "mesh-pair"))) + ".", ""]
        plot["mesh-pair"] = vals
        if lat:
            md += [f"Open loop at {rate:,} req/s ({how}): `target/release/ringway-load -R {rate} -c "
                   f"{args.latency_connections} -d {args.duration}s` after a 1 s warm-up at the same rate, "
                   "latency from the intended send time (coordinated omission corrected), µs; direct = "
                   "ringway-load straight to the upstream; added = pair − direct (medians over rounds). "
                   "CPU µs/req here is both sidecars at this rate.", ""]
            head = ("| target | req/s | p50 µs | p99 µs | p99.9 µs | added p50 | added p99 | CPU µs/req (both) "
                    "| errors | unsent |")
            md += [head, "| --- " * (head.count("|") - 1) + "|"]
            d = lat.get("direct", [])
            d50, d99 = med(s.p50_us for s in d), med(s.p99_us for s in d)
            added = {}
            for n in ["direct", *names]:
                ss = lat.get(n)
                if not ss:
                    continue
                p50, p99 = med(s.p50_us for s in ss), med(s.p99_us for s in ss)
                proxy = n != "direct"
                if proxy:
                    added[n] = p99 - d99
                md.append("| " + " | ".join([
                    n if proxy else "direct (no sidecars)", _f(med(s.rps for s in ss), 0), _f(p50, 0), _f(p99, 0),
                    _f(med(s.p999_us for s in ss), 0), _f(p50 - d50, 0) if proxy else "-",
                    f"**{_f(p99 - d99, 0)}**" if proxy else "-", _f(med(s.cpu_us for s in ss), 2) if proxy else "-",
                    str(sum(s.errors for s in ss)), str(sum(s.unsent for s in ss)),
                ]) + " |")
            md.append("")
            md += _ratio_line("pair added p99", added, "—")
            plot["mesh-pair added p99"] = added
        if pair_checks:
            md += ["Checks and what each pair negotiated (the first connection between the two sidecars, captured "
                   "on the loopback; in TLS 1.3 the ALPN answer is encrypted, so only the offer is shown):", ""]
            head = ("| pair | outbound's ClientHello | inbound's choice | XFCC the upstream got (client sent a "
                    "fake one) | no client cert | CA-signed cert of another identity |")
            md += [head, "| --- " * (head.count("|") - 1) + "|"]
            for n, c in pair_checks.items():
                md.append(f"| {n} | {c['why'] or _hello_client(c['client'])} | {c['why'] or _hello_server(c['server'])} "
                          f"| `{c['xfcc']}` | {c['no_cert']} | {c['intruder']} |")
            md.append("")
            rw = pair_checks.get("ringway", {}).get("server")
            if rw is not None and rw.ciphers and rw.ciphers[0] != 0x1301:
                md += [f"Ringway's pair negotiates {CIPHER_NAMES.get(rw.ciphers[0], hex(rw.ciphers[0]))} (rustls "
                       "offers it first and the rustls server follows the client's order; neither side can be "
                       f"configured), the other pairs {CIPHER}: Ringway's pair pays for the larger AES key, "
                       "which with 2-byte bodies is a small part of its cost.", ""]
    return md, plot
