#!/usr/bin/env python3
"""Does scraping /metrics move the latency of traffic? Ringway (2 workers, Istio metrics and a
JSON access log on) in front of ringway-upstream; ringway-load at a fixed rate, alternating runs
without and with a scraper that GETs /metrics every --scrape-ms (Prometheus scrapes every 15 s;
the default 100 ms is 150 times harsher). Prints p50/p99/p99.9 of each run and the medians.

    cargo build --release -p ringway -p ringway-tools
    python3 tools/compare/scrape_p99.py [--rate 20000] [--runs 3] [--duration 8]
"""
import argparse, json, socket, statistics, subprocess, sys, tempfile, threading, time, urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REL = ROOT / "target" / "release"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(url, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except Exception:
            time.sleep(0.05)
    sys.exit(f"{url} did not answer")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=int, default=20000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--duration", type=int, default=8)
    p.add_argument("--scrape-ms", type=int, default=100)
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ringway-scrape-"))
    up, listen, admin = free_port(), free_port(), free_port()
    (tmp / "r.toml").write_text(f"""[runtime]
workers = 2
[admin]
bind = "127.0.0.1:{admin}"
[telemetry]
istio_metrics = true
[[listeners]]
name = "bench"
bind = "127.0.0.1:{listen}"
cluster = "up"
[listeners.access_log]
path = "{tmp / 'access.log'}"
[[clusters]]
name = "up"
endpoints = ["127.0.0.1:{up}"]
""")
    procs = [subprocess.Popen([str(REL / "ringway-upstream"), "--listen", f"127.0.0.1:{up}", "--body-size", "2"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    procs.append(subprocess.Popen([str(REL / "ringway"), "--config", str(tmp / "r.toml")],
                                  stdout=subprocess.DEVNULL, stderr=open(tmp / "ringway.err", "w")))
    try:
        wait(f"http://127.0.0.1:{admin}/ready")
        results = {"off": [], "on": []}
        scrapes = [0]
        for run in range(a.runs):
            for mode in ("off", "on"):
                stop = threading.Event()
                def scraper():
                    while not stop.is_set():
                        urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read()
                        scrapes[0] += 1
                        stop.wait(a.scrape_ms / 1000)
                t = threading.Thread(target=scraper)
                if mode == "on":
                    t.start()
                out = subprocess.run([str(REL / "ringway-load"), "-R", str(a.rate), "-c", "50", "-d", f"{a.duration}s",
                                      "--warmup", "1s", "--json", f"http://127.0.0.1:{listen}/"],
                                     capture_output=True, text=True, timeout=a.duration + 30)
                stop.set()
                if mode == "on":
                    t.join()
                r = json.loads(out.stdout)
                lat = r["latency_us"]
                results[mode].append((lat["p50"], lat["p99"], lat["p99_9"], r["errors"]["total"] + r["non_2xx"]))
                print(f"run {run + 1} scraping {mode:3}: p50 {lat['p50']} µs  p99 {lat['p99']} µs  "
                      f"p99.9 {lat['p99_9']} µs  errors {r['errors']['total'] + r['non_2xx']}", flush=True)
        size = len(urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics").read())
        print(f"\n{a.rate} req/s open loop, 50 connections, {a.runs} runs of {a.duration} s each way; "
              f"{scrapes[0]} scrapes of {size} bytes every {a.scrape_ms} ms")
        for mode in ("off", "on"):
            m = [statistics.median(x[i] for x in results[mode]) for i in range(3)]
            print(f"median scraping {mode:3}: p50 {m[0]:.0f} µs  p99 {m[1]:.0f} µs  p99.9 {m[2]:.0f} µs")
    finally:
        for pr in procs:
            pr.terminate()
            pr.wait()


if __name__ == "__main__":
    main()
