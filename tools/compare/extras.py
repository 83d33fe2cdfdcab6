"""The idle, latency and upload scenarios of tools/compare/compare.py, and their report.

* idle: N keep-alive client connections, each having completed one GET, held open at once;
  the proxy's RSS before and while they are held gives KiB per idle connection.
* latency: `ringway-load -R RATE` (open loop, coordinated-omission corrected) against every
  target at one fixed rate; p50/p99/p99.9 and the latency a proxy adds over the direct path.
* upload: a 64 MiB chunked POST through each proxy to `ringway-upstream`'s /sha256 sink; the
  proxy's CPU µs per MiB and the throughput, with the sink's digest checked.

Invariants: every socket has a timeout and every subprocess a deadline, so each scenario is
bounded in time; sockets opened here are closed before the function returns.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import socket
import statistics
import subprocess
import sys
import time

from procstat import CLK_TCK, cpu_ticks, process_tree, rss_kib

REQ_SMALL = b"GET /small HTTP/1.1\r\nHost: bench\r\n\r\n"
UPLOAD_BLOCK = bytes((i * 7 + 3) & 0xFF for i in range(64 * 1024))
UPLOAD_BLOCKS = 1024  # 64 MiB
UPLOAD_MIB = len(UPLOAD_BLOCK) * UPLOAD_BLOCKS / (1024 * 1024)


def nan() -> float:
    return float("nan")


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """Reads one HTTP/1.1 response (Content-Length or chunked); returns (status, body)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed before the response head")
        buf += data
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(rest) < n:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed mid-body")
            rest += data
        return status, rest[:n]
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while not rest.endswith(b"0\r\n\r\n"):
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed mid-body")
            rest += data
        return status, rest
    return status, rest


# ---------------------------------------------------------------- idle connections


@dataclasses.dataclass
class IdleSample:
    opened: int
    still_open: int  # of a probe of the held connections, how many still answered
    probed: int
    rss_before_kib: int
    rss_held_kib: int
    rss_after_kib: int
    kib_per_conn: float
    seconds: float


def measure_idle(pid: int, port: int, n: int, budget_s: float = 60.0) -> IdleSample:
    """Opens n keep-alive connections (one GET each), holds them, measures RSS, closes them."""
    pids = process_tree(pid)
    time.sleep(0.5)
    before = rss_kib(pids)
    socks: list[socket.socket] = []
    t0 = time.monotonic()
    still = probed = 0
    try:
        for _ in range(n):
            if time.monotonic() - t0 > budget_s:
                break
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            socks.append(s)
            s.sendall(REQ_SMALL)
            read_response(s)
        time.sleep(1.0)
        held = rss_kib(pids)
        # Probe every 50th connection: it must still be a live keep-alive connection.
        for s in socks[::50]:
            probed += 1
            try:
                s.sendall(REQ_SMALL)
                if read_response(s)[0] == 200:
                    still += 1
            except OSError:
                pass
    finally:
        for s in socks:
            s.close()
    seconds = time.monotonic() - t0
    time.sleep(1.0)
    after = rss_kib(pids)
    opened = len(socks)
    return IdleSample(
        opened, still, probed, before, held, after, (held - before) / max(opened, 1), seconds
    )


# ---------------------------------------------------------------- open-loop latency


@dataclasses.dataclass
class LatSample:
    rate: int
    rps: float
    p50_us: float
    p99_us: float
    p999_us: float
    lag_p99_us: float
    cpu_us: float  # proxy CPU µs per request (nan for direct)
    errors: int
    unsent: int


def run_load(load: str, url: str, args: list[str], seconds: float) -> dict:
    argv = [load, *args, "--json", "--max-error-rate", "1", url]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=False)
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError as e:
        raise RuntimeError(f"ringway-load failed ({p.returncode}) for {url}:\n{p.stdout}{p.stderr}") from e


def capacity(load: str, port: int, seconds: int = 3) -> float:
    """Closed-loop max req/s for /small (used when the small scenario did not run)."""
    j = run_load(load, f"http://127.0.0.1:{port}/small", ["-c", "50", "-d", f"{seconds}s"], seconds)
    return float(j.get("requests_per_sec", 0.0))


def measure_latency(load: str, pid: int | None, port: int, rate: int, conns: int, seconds: int) -> LatSample:
    url = f"http://127.0.0.1:{port}/small"
    run_load(load, url, ["-R", str(rate), "-c", str(conns), "-d", "1s"], 1)  # warm-up
    pids = process_tree(pid) if pid else []
    u0, s0 = cpu_ticks(pids)
    j = run_load(load, url, ["-R", str(rate), "-c", str(conns), "-d", f"{seconds}s"], seconds)
    u1, s1 = cpu_ticks(pids)
    lat = j.get("latency_us", {})
    reqs = max(int(j.get("requests", 0)), 1)
    cpu = ((u1 - u0) + (s1 - s0)) * 1e6 / CLK_TCK / reqs if pids else nan()
    return LatSample(
        rate=rate,
        rps=float(j.get("requests_per_sec", 0.0)),
        p50_us=float(lat.get("p50", nan())),
        p99_us=float(lat.get("p99", nan())),
        p999_us=float(lat.get("p99_9", nan())),
        lag_p99_us=float(j.get("send_lag_us", {}).get("p99", nan())),
        cpu_us=cpu,
        errors=int(j.get("errors", {}).get("total", 0)) + int(j.get("non_2xx", 0)),
        unsent=int(j.get("unsent", 0)),
    )


# ---------------------------------------------------------------- 64 MiB chunked upload


@dataclasses.dataclass
class UploadSample:
    uploads: int
    ok: int
    seconds: float  # wall time of all uploads
    mib_per_s: float
    cpu_us_per_mib: float  # proxy CPU (nan for direct)
    user_us_per_mib: float
    sys_us_per_mib: float
    error: str


def upload_digest() -> str:
    h = hashlib.sha256()
    for _ in range(UPLOAD_BLOCKS):
        h.update(UPLOAD_BLOCK)
    return h.hexdigest()


def upload_once(port: int, expect: str) -> str:
    """One 64 MiB chunked POST /sha256; returns '' on success, else what went wrong."""
    chunk = f"{len(UPLOAD_BLOCK):x}\r\n".encode() + UPLOAD_BLOCK + b"\r\n"
    head = (
        b"POST /sha256 HTTP/1.1\r\nHost: bench\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/octet-stream\r\n\r\n"
    )
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(head)
            for _ in range(UPLOAD_BLOCKS):
                s.sendall(chunk)
            s.sendall(b"0\r\n\r\n")
            status, body = read_response(s)
    except (OSError, ValueError, IndexError) as e:
        return f"{type(e).__name__}: {e}"
    want = f"len={len(UPLOAD_BLOCK) * UPLOAD_BLOCKS} sha256={expect}"
    if status != 200 or want not in body.decode(errors="replace"):
        return f"HTTP {status}: {body[:120]!r}"
    return ""


def measure_upload(pid: int | None, port: int, uploads: int, expect: str) -> UploadSample:
    pids = process_tree(pid) if pid else []
    u0, s0 = cpu_ticks(pids)
    t0 = time.monotonic()
    errors = [upload_once(port, expect) for _ in range(uploads)]
    wall = time.monotonic() - t0
    u1, s1 = cpu_ticks(pids)
    ok = sum(1 for e in errors if not e)
    mib = max(ok, 1) * UPLOAD_MIB
    per = 1e6 / CLK_TCK / mib
    return UploadSample(
        uploads=uploads,
        ok=ok,
        seconds=wall,
        mib_per_s=ok * UPLOAD_MIB / wall if wall > 0 else nan(),
        cpu_us_per_mib=((u1 - u0) + (s1 - s0)) * per if pids else nan(),
        user_us_per_mib=(u1 - u0) * per if pids else nan(),
        sys_us_per_mib=(s1 - s0) * per if pids else nan(),
        error=next((e for e in errors if e), ""),
    )


# ---------------------------------------------------------------- driver


def run_extras(
    wanted: list[str],
    targets: list,
    args,
    tools: dict[str, str],
    results: dict,
    sink,
) -> tuple[list[str], dict[str, dict[str, float]]]:
    """Runs idle, latency and upload (rotated order, per round); returns markdown and plot values."""
    md: list[str] = []
    plot: dict[str, dict[str, float]] = {}
    proxies = [t for t in targets if t.name != "direct"]
    order = lambda ts, rnd: ts[rnd % len(ts) :] + ts[: rnd % len(ts)]  # noqa: E731
    if "latency" in wanted:
        load = tools["ringway-load"]
        if args.rate:
            rate, how = args.rate, "given with --rate"
        else:
            caps = {n: statistics.median(s.rps for s in results[(n, "small")])
                    for n in (t.name for t in proxies) if results.get((n, "small"))}
            if not caps:
                caps = {t.name: capacity(load, t.port) for t in proxies}
                src = "3 s closed-loop `ringway-load -c 50` per proxy"
            else:
                src = "the small scenario's median wrk req/s"
            slowest = min(caps, key=caps.get)
            rate = max(100, int(caps[slowest] * 0.5 / 100) * 100)
            how = f"50% of the slowest proxy's capacity ({slowest}, {caps[slowest]:,.0f} req/s from {src})"
        lat: dict[str, list[LatSample]] = {}
        for rnd in range(args.rounds):
            for t in order(targets, rnd):
                pid = t.proc.pid if t.name != "direct" else None
                s = measure_latency(load, pid, t.port, rate, args.latency_connections, args.duration)
                lat.setdefault(t.name, []).append(s)
                print(f"latency round {rnd + 1} {t.name:8} {s.rps:>9,.0f} req/s p50 {s.p50_us:,.0f} "
                      f"p99 {s.p99_us:,.0f} p99.9 {s.p999_us:,.0f} µs cpu {s.cpu_us:.2f} µs/req",
                      file=sys.stderr, flush=True)
        md += report_latency(lat, rate, how, args.latency_connections, args.duration)
        plot["latency"] = {n: _med(s.cpu_us for s in ss) for n, ss in lat.items() if n != "direct"}
        if "direct" in lat:
            d99 = _med(s.p99_us for s in lat["direct"])
            plot["latency_p99"] = {n: _med(s.p99_us for s in ss) - d99 for n, ss in lat.items() if n != "direct"}
    if "upload" in wanted and sink is not None:
        digest = upload_digest()
        up: dict[str, list[UploadSample]] = {}
        upload_targets = ([] if args.no_direct else [sink]) + proxies
        for rnd in range(args.rounds):
            for t in order(upload_targets, rnd):
                pid = t.proc.pid if t.name != "sink" else None
                s = measure_upload(pid, t.upload_port, args.uploads, digest)
                up.setdefault("direct" if t.name == "sink" else t.name, []).append(s)
                print(f"upload round {rnd + 1} {t.name:8} {s.mib_per_s:,.0f} MiB/s cpu "
                      f"{s.cpu_us_per_mib:,.0f} µs/MiB ok {s.ok}/{s.uploads} {s.error}",
                      file=sys.stderr, flush=True)
        md += report_upload(up, args.uploads)
        plot["upload"] = {n: _med(s.cpu_us_per_mib for s in ss) for n, ss in up.items() if n != "direct"}
    if "idle" in wanted:
        idle: dict[str, list[IdleSample]] = {}
        for rnd in range(args.rounds):
            for t in order(proxies, rnd):
                s = measure_idle(t.proc.pid, t.port, args.idle_conns)
                idle.setdefault(t.name, []).append(s)
                print(f"idle round {rnd + 1} {t.name:8} {s.opened} conns {s.kib_per_conn:.2f} KiB/conn "
                      f"alive {s.still_open}/{s.probed} in {s.seconds:.1f}s", file=sys.stderr, flush=True)
        md += report_idle(idle, args.idle_conns)
        plot["idle"] = {
            n: _med((s.rss_held_kib - ss[0].rss_before_kib) / max(s.opened, 1) for s in ss)
            for n, ss in idle.items()
        }
    return md, plot


# ---------------------------------------------------------------- report


def _f(x: float, d: int = 1) -> str:
    return "n/a" if x != x else f"{x:,.{d}f}"  # noqa: PLR0124 - NaN check


def _med(xs) -> float:
    xs = [x for x in xs if x == x]  # noqa: PLR0124
    return statistics.median(xs) if xs else nan()


def _best_line(what: str, values: dict[str, float], lower_better: bool = True) -> str:
    peers = {k: v for k, v in values.items() if k not in ("ringway", "direct") and v == v}
    rw = values.get("ringway", nan())
    if not peers or rw != rw:
        return ""
    best = min(peers, key=peers.get) if lower_better else max(peers, key=peers.get)
    if peers[best] <= 0:
        return (f"Ringway {what}: {_f(rw, 2)}; best peer ({best}) measured {_f(peers[best], 2)}, "
                "so no ratio (its growth stayed below what RSS resolves).")
    ratio = rw / peers[best]
    return f"Ringway {what} ÷ best peer ({best}, {_f(peers[best], 2)}): **{_f(ratio, 2)}×**."


def report_idle(res: dict[str, list[IdleSample]], n: int) -> list[str]:
    out = [f"## idle: {n} idle keep-alive client connections held at once", ""]
    out.append(
        "Each connection completed one `GET /small` first, so the proxy holds a real keep-alive "
        "connection; RSS is summed VmRSS over the proxy's processes, 0.5 s before opening, 1 s "
        "after the last one opened, and 1 s after closing them all. Every 50th connection is "
        "probed with a second request while held (alive/probed)."
    )
    out.append(
        "Allocators keep freed memory, so a later round reuses what the first one touched: KiB per "
        "idle conn is (RSS held in a round − RSS before the *first* round) ÷ connections, median "
        "over rounds; the last column is each round's growth over its own start."
    )
    out += ["", "| proxy | opened | alive/probed | RSS before MiB | RSS held MiB | RSS after close MiB "
            "| KiB per idle conn | per-round growth KiB/conn |", "| --- " * 8 + "|"]
    kib = {}
    for name, ss in res.items():
        base = ss[0].rss_before_kib
        kib[name] = _med((s.rss_held_kib - base) / max(s.opened, 1) for s in ss)
        out.append(
            f"| {name} | {int(_med(s.opened for s in ss))} | {sum(s.still_open for s in ss)}/"
            f"{sum(s.probed for s in ss)} | {_f(_med(s.rss_before_kib for s in ss) / 1024)} | "
            f"{_f(_med(s.rss_held_kib for s in ss) / 1024)} | {_f(_med(s.rss_after_kib for s in ss) / 1024)} "
            f"| **{_f(kib[name], 2)}** | {', '.join(_f(s.kib_per_conn, 2) for s in ss)} |"
        )
    out += ["", _best_line("KiB per idle connection", kib), ""]
    return out


def report_latency(res: dict[str, list[LatSample]], rate: int, how: str, conns: int, seconds: int) -> list[str]:
    out = [f"## latency: open loop at {rate:,} req/s, GET /small, {conns} connections", ""]
    out.append(
        f"Rate: {how}. Each run: a 1 s warm-up at the same rate, then `ringway-load -R {rate} "
        f"-c {conns} -d {seconds}s --json`; latency from the intended send time (coordinated "
        "omission corrected), in µs. Added = proxy minus direct, from the medians over rounds."
    )
    out += ["", "| target | req/s | p50 µs | p99 µs | p99.9 µs | added p50 | added p99 | added p99.9 "
            "| CPU µs/req | send lag p99 µs | errors | unsent |", "| --- " * 12 + "|"]
    d = res.get("direct", [])
    d50, d99, d999 = (_med(getattr(s, a) for s in d) for a in ("p50_us", "p99_us", "p999_us"))
    added99 = {}
    cpu = {}
    for name, ss in res.items():
        p50, p99, p999 = (_med(getattr(s, a) for s in ss) for a in ("p50_us", "p99_us", "p999_us"))
        proxy = name != "direct"
        if proxy:
            added99[name] = p99 - d99
            cpu[name] = _med(s.cpu_us for s in ss)
        out.append(
            f"| {name} | {_f(_med(s.rps for s in ss), 0)} | {_f(p50, 0)} | {_f(p99, 0)} | {_f(p999, 0)} | "
            + (f"{_f(p50 - d50, 0)} | **{_f(p99 - d99, 0)}** | {_f(p999 - d999, 0)} | "
               f"{_f(cpu[name], 2)} | " if proxy else "- | - | - | - | ")
            + f"{_f(_med(s.lag_p99_us for s in ss), 0)} | {sum(s.errors for s in ss)} | {sum(s.unsent for s in ss)} |"
        )
    out.append("")
    for name, ss in res.items():
        out.append(f"- {name} p99 per round (µs): " + ", ".join(_f(s.p99_us, 0) for s in ss))
    out += ["", _best_line("added p99", added99), _best_line("CPU µs/req at this rate", cpu), ""]
    return out


def report_upload(res: dict[str, list[UploadSample]], uploads: int) -> list[str]:
    out = [f"## upload: 64 MiB chunked POST to ringway-upstream /sha256, {uploads} per round", ""]
    out.append(
        "One connection per upload, 64 KiB chunks, sent by Python; the sink hashes the body and "
        "the digest is checked. CPU is the proxy's over all uploads of the round, per MiB "
        "delivered. Throughput includes the sink's SHA-256 and the client's sends on the same 2 "
        "cores, so read it as relative."
    )
    out += ["", "| target | ok/total | MiB/s | CPU µs/MiB | user µs/MiB | sys µs/MiB | CPU per round |",
            "| --- " * 7 + "|"]
    cpu = {}
    for name, ss in res.items():
        proxy = name != "direct"
        if proxy:
            cpu[name] = _med(s.cpu_us_per_mib for s in ss)
        out.append(
            f"| {name} | {sum(s.ok for s in ss)}/{sum(s.uploads for s in ss)} | "
            f"{_f(_med(s.mib_per_s for s in ss), 0)} | "
            + (f"**{_f(cpu[name], 0)}** | {_f(_med(s.user_us_per_mib for s in ss), 0)} | "
               f"{_f(_med(s.sys_us_per_mib for s in ss), 0)} | "
               + ", ".join(_f(s.cpu_us_per_mib, 0) for s in ss) if proxy else "- | - | - | -")
            + " |"
        )
    errs = [f"{n}: {s.error}" for n, ss in res.items() for s in ss if s.error]
    out += ["", _best_line("CPU µs/MiB", cpu), ""]
    if errs:
        out += ["Upload errors: " + "; ".join(errs[:6]), ""]
    return out
