#!/usr/bin/env bash
# Runs the sidecar mTLS example (README.md): a plaintext cart app on 127.0.0.1:8081, the
# cart's inbound sidecar (mTLS on 127.0.0.1:15006) and the frontend's outbound sidecar
# (plaintext on 127.0.0.1:15001); sends one allowed and one denied request through them;
# stops everything on exit.
#
# Usage: examples/sidecar-mtls/run.sh      (from anywhere; needs openssl, python3, curl)
#        RINGWAY=/path/to/ringway examples/sidecar-mtls/run.sh
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
logs=$(mktemp -d)
pids=()

stop() {
    local status=$?
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if ((status != 0)); then
        for f in "$logs"/*.log; do
            [[ -s $f ]] && { echo "--- $(basename "$f")"; tail -n 20 "$f"; }
        done
    fi
    rm -rf "$logs"
    exit "$status"
}
trap stop EXIT
trap 'exit 130' INT TERM

# Certificates: made if missing or expiring within the hour.
certs_ok() {
    local c
    for c in ca frontend cart; do
        [[ -s $here/certs/$c.pem && -s $here/certs/$c.key ]] || return 1
        openssl x509 -checkend 3600 -noout -in "$here/certs/$c.pem" >/dev/null || return 1
    done
}
certs_ok || "$here/make-certs.sh"

# The proxy: $RINGWAY, else target/release/ringway if it is not older than the sources,
# else built now (release).
ringway=${RINGWAY:-$root/target/release/ringway}
if [[ -z ${RINGWAY:-} ]]; then
    if [[ ! -x $ringway ]] || [[ -n $(find "$root/dataplane/src" "$root/dataplane/Cargo.toml" \
        -newer "$ringway" -print -quit) ]]; then
        echo "building ringway (release) ..."
        (cd "$root" && cargo build --release -q -p ringway --bin ringway)
    fi
fi

for cfg in inbound outbound; do
    "$ringway" --config "$here/$cfg.toml" --check >/dev/null
done

wait_for() { # URL: until it answers 2xx, 10 s at most
    local i
    for i in $(seq 100); do
        curl -fs -o /dev/null --max-time 1 "$1" && return 0
        sleep 0.1
    done
    echo "run.sh: nothing answers on $1" >&2
    return 1
}

python3 "$here/app.py" 127.0.0.1:8081 2>"$logs/app.log" &
pids+=($!)
"$ringway" --config "$here/inbound.toml" >"$logs/inbound.log" 2>&1 &
pids+=($!)
"$ringway" --config "$here/outbound.toml" >"$logs/outbound.log" 2>&1 &
pids+=($!)
wait_for http://127.0.0.1:8081/cart
wait_for http://127.0.0.1:15090/ready
wait_for http://127.0.0.1:15000/ready

echo "== curl http://127.0.0.1:15001/cart   (plaintext -> mTLS -> plaintext)"
curl -sS -i http://127.0.0.1:15001/cart
echo
echo "== curl http://127.0.0.1:15001/admin  (not allowed by the inbound sidecar's authz)"
curl -sS -i http://127.0.0.1:15001/admin
echo
