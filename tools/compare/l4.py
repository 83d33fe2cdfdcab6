"""The L4 (TCP proxying) scenarios of tools/compare/compare.py, and their report.

* tcp-stream: each of --l4-stream-conns connections downloads a 64 MiB stream
  (`ringway-tcp serve --mode source:67108864` behind the proxy; bytes checked by
  `ringway-tcp load --mode download:...`); the proxy's CPU µs per MiB and the throughput.
* tcp-echo: --l4-echo-conns connections each doing 1 KiB round trips, one in flight per
  connection, for --duration seconds (`ringway-tcp serve --mode echo`); the proxy's CPU µs
  per round trip, round trips per second and the round-trip p50/p99.

The proxies: Ringway with `protocol = "tcp"` listeners, HAProxy `mode tcp`, nginx `stream`
(Debian's libnginx-mod-stream) and Envoy `tcp_proxy`, 2 workers/threads each, their own
processes started for this part only (templates/l4/). Rounds are interleaved and rotated.

Invariants: every load run is bounded (`--count` for streams, `--duration` for echo, and a
subprocess deadline); all processes are started with the caller's `spawn` (stopped on exit).
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from procstat import CLK_TCK, cpu_ticks, process_tree

STREAM_BYTES = 64 << 20
ECHO_BYTES = 1024
L4_PEERS = ("ringway", "ringway-base", "nginx", "haproxy", "envoy")
NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"


@dataclasses.dataclass
class L4Sample:
    operations: int
    mib: float
    seconds: float
    cpu_us: float  # per MiB (stream) or per round trip (echo)
    user_us: float
    sys_us: float
    p50_us: float
    p99_us: float
    errors: int


@dataclasses.dataclass
class L4Target:
    name: str
    stream_port: int
    echo_port: int
    proc: subprocess.Popen


def wait_tcp(port: int, proc: subprocess.Popen, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"error: {what} exited with {proc.returncode} while starting")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"error: {what} not listening on {port} after {timeout:.0f}s")


def start_peer(tcp_tool: str, mode: str, spawn, tmp: Path, free_port) -> int:
    port = free_port()
    proc = spawn([tcp_tool, "serve", "--listen", f"127.0.0.1:{port}", "--mode", mode], tmp / f"tcp-{mode.split(':')[0]}.out")
    wait_tcp(port, proc, f"ringway-tcp {mode}")
    return port


def start_l4_proxy(name: str, exe: str, tmp: Path, h, source_port: int, echo_port: int) -> L4Target | None:
    stream, echo = h.free_port(), h.free_port()
    ports = {"stream_port": stream, "echo_port": echo, "source_port": source_port, "echo_upstream_port": echo_port}
    log = tmp / f"l4-{name}.out"
    if name in ("ringway", "ringway-base"):
        conf = h.render("l4/ringway.toml", tmp / f"l4-{name}.toml", admin_port=h.free_port(), **ports)
        check = subprocess.run([exe, "--config", str(conf), "--check"], capture_output=True, text=True, check=False)
        if check.returncode != 0:
            return None  # a build without tcp listeners (an older --ringway-base)
        proc = h.spawn([exe, "--config", str(conf)], log)
    elif name == "nginx":
        if not os.path.exists(NGINX_STREAM_MODULE):
            return None
        conf = h.render("l4/nginx-stream.conf", tmp / "l4-nginx.conf", tmp=tmp, user_line=h.nginx_user_line(),
                        load_module=f"load_module {NGINX_STREAM_MODULE};", **ports)
        proc = h.start_nginx(exe, conf, tmp, log)
    elif name == "haproxy":
        extra = "    option splice-auto\n" if h.haproxy_splice() else ""
        conf = h.render("l4/haproxy.cfg", tmp / "l4-haproxy.cfg", tmp=tmp, haproxy_extra=extra, **ports)
        proc = h.spawn([exe, "-db", "-f", str(conf)], log)
    elif name == "envoy":
        conf = h.render("l4/envoy.yaml", tmp / "l4-envoy.yaml", admin_port=h.free_port(), **ports)
        proc = h.spawn([exe, "-c", str(conf), "--concurrency", "2", "--disable-hot-restart", "--log-level", "warn"], log)
    else:
        return None
    wait_tcp(stream, proc, f"{name} (l4)")
    wait_tcp(echo, proc, f"{name} (l4)")
    return L4Target(name, stream, echo, proc)


def run_load(tcp_tool: str, argv: list[str], timeout: float) -> dict:
    p = subprocess.run([tcp_tool, "load", *argv, "--json"], capture_output=True, text=True, timeout=timeout, check=False)
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError) as e:
        raise RuntimeError(f"ringway-tcp load {argv} failed ({p.returncode}): {p.stdout}{p.stderr}") from e


def measure(t: L4Target, tcp_tool: str, scenario: str, args) -> L4Sample:
    pids = process_tree(t.proc.pid)
    u0, s0 = cpu_ticks(pids)
    if scenario == "tcp-stream":
        conns = args.l4_stream_conns
        r = run_load(tcp_tool, ["--target", f"127.0.0.1:{t.stream_port}", "--mode", f"download:{STREAM_BYTES}",
                                "--connections", str(conns), "--count", str(args.l4_streams)], timeout=300)
    else:
        r = run_load(tcp_tool, ["--target", f"127.0.0.1:{t.echo_port}", "--mode", f"echo:{ECHO_BYTES}",
                                "--connections", str(args.l4_echo_conns), "--duration", str(args.duration)],
                     timeout=args.duration + 60)
    u1, s1 = cpu_ticks(pids)
    ops = max(int(r["operations"]), 1)
    mib = r["bytes"] / (1 << 20)
    unit = mib if scenario == "tcp-stream" else ops
    per = 1e6 / CLK_TCK / max(unit, 1e-9)
    return L4Sample(
        operations=int(r["operations"]),
        mib=mib,
        seconds=float(r["seconds"]),
        cpu_us=((u1 - u0) + (s1 - s0)) * per,
        user_us=(u1 - u0) * per,
        sys_us=(s1 - s0) * per,
        p50_us=float(r.get("p50_us", 0)),
        p99_us=float(r.get("p99_us", 0)),
        errors=int(r["errors"]),
    )


def run_l4(wanted: list[str], exes: dict[str, str], args, tools: dict[str, str], h, tmp: Path):
    """Runs the asked L4 scenarios; returns (markdown lines, plot panels {title: {name: value}})."""
    tcp_tool = tools["ringway-tcp"]
    source = start_peer(tcp_tool, f"source:{STREAM_BYTES}", h.spawn, tmp, h.free_port)
    echo = start_peer(tcp_tool, "echo", h.spawn, tmp, h.free_port)
    targets: list[L4Target] = []
    notes: list[str] = []
    for name in L4_PEERS:
        if name not in exes:
            continue
        t = start_l4_proxy(name, exes[name], tmp, h, source, echo)
        if t is None:
            notes.append(f"{name} skipped for L4: no stream module at {NGINX_STREAM_MODULE} "
                         "(apt-get install libnginx-mod-stream)." if name == "nginx"
                         else f"{name} skipped for L4 (its config has no tcp listeners: `--check` failed).")
            continue
        targets.append(t)
    results: dict[tuple[str, str], list[L4Sample]] = {}
    for rnd in range(args.rounds):
        for sc in wanted:
            order = targets[rnd % len(targets):] + targets[: rnd % len(targets)]
            for t in order:
                s = measure(t, tcp_tool, sc, args)
                results.setdefault((t.name, sc), []).append(s)
                unit = "MiB" if sc == "tcp-stream" else "round trip"
                print(f"{sc} round {rnd + 1} {t.name:12} cpu {s.cpu_us:8.2f} µs/{unit} "
                      f"(user {s.user_us:.2f}, sys {s.sys_us:.2f}) {s.mib / max(s.seconds, 1e-9):,.0f} MiB/s "
                      f"p99 {s.p99_us:,.0f} µs errors {s.errors}", file=sys.stderr, flush=True)
                if t.proc.poll() is not None:
                    sys.exit(f"error: {t.name} (l4) exited ({t.proc.returncode})")
    return report(results, wanted, [t.name for t in targets], args, notes)


def report(results, wanted, names, args, notes):
    med = statistics.median
    md = ["## L4 (TCP proxying)", ""]
    md.append(
        "Each proxy relays two TCP listeners: to a `ringway-tcp` source of 64 MiB streams and to a "
        "`ringway-tcp` echo server. CPU = utime+stime of the proxy's processes during the run. "
        f"Ringway: `protocol = \"tcp\"` listeners; HAProxy `mode tcp`; nginx `stream`; Envoy `tcp_proxy`; "
        "2 workers/threads each, defaults otherwise."
    )
    md.append("")
    for n in notes:
        md += [f"- {n}", ""]
    plot: dict[str, dict[str, float]] = {}
    for sc in wanted:
        if sc == "tcp-stream":
            md.append(f"### tcp-stream: {args.l4_streams} × 64 MiB per connection, {args.l4_stream_conns} connections")
            head = "| proxy | CPU µs/MiB | user | sys | MiB/s | errors |"
        else:
            md.append(f"### tcp-echo: 1 KiB round trips, {args.l4_echo_conns} connections, {args.duration} s")
            head = "| proxy | CPU µs/round trip | user | sys | round trips/s | p50 µs | p99 µs | errors |"
        md += ["", head, "| --- " * (head.count("|") - 1) + "|"]
        vals = {}
        for n in names:
            ss = results.get((n, sc), [])
            if not ss:
                continue
            cpu = med(s.cpu_us for s in ss)
            vals[n] = cpu
            errors = sum(s.errors for s in ss)
            if sc == "tcp-stream":
                rate = med(s.mib / max(s.seconds, 1e-9) for s in ss)
                cells = [n, f"{cpu:,.1f}", f"{med(s.user_us for s in ss):,.1f}", f"{med(s.sys_us for s in ss):,.1f}",
                         f"{rate:,.0f}", str(errors)]
            else:
                rate = med(s.operations / max(s.seconds, 1e-9) for s in ss)
                cells = [n, f"{cpu:,.2f}", f"{med(s.user_us for s in ss):,.2f}", f"{med(s.sys_us for s in ss):,.2f}",
                         f"{rate:,.0f}", f"{med(s.p50_us for s in ss):,.0f}", f"{med(s.p99_us for s in ss):,.0f}",
                         str(errors)]
            md.append("| " + " | ".join(cells) + " |")
        md.append("")
        peers = {n: v for n, v in vals.items() if n not in ("ringway", "ringway-base")}
        if "ringway" in vals and peers:
            best = min(peers, key=peers.get)
            md.append(f"Ringway ÷ best peer ({best}): **{vals['ringway'] / peers[best]:.2f}×** "
                      f"(target ≤ 0.7×).")
            md.append("")
        rounds = "; ".join(f"{n} " + ", ".join(f"{s.cpu_us:.2f}" for s in results[(n, sc)])
                           for n in names if results.get((n, sc)))
        md += [f"CPU per round: {rounds}.", ""]
        plot[sc] = vals
    return md, plot
