#!/usr/bin/env bash
# One command to see Ringway proxy a real request: builds the proxy and the test upstream,
# starts ringway-upstream on 127.0.0.1:9000 and ringway with examples/quickstart.toml
# (listener 127.0.0.1:8080, admin 127.0.0.1:9901), and stops both on Ctrl-C.
#
#   ./tools/quickstart.sh            # then, in another shell:  curl -i http://127.0.0.1:8080/
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${PROFILE:-release}
flag=$([ "$profile" = release ] && echo --release || echo "")
echo "building ringway and ringway-upstream ($profile)…" >&2
cargo build $flag -p ringway -p ringway-tools --bins
bin=target/$([ "$profile" = release ] && echo release || echo debug)
"$bin/ringway-upstream" --listen 127.0.0.1:9000 --name demo --body-size 13 &
up=$!
trap 'kill $up 2>/dev/null; wait $up 2>/dev/null || true' EXIT INT TERM
echo "ringway on http://127.0.0.1:8080 (admin http://127.0.0.1:9901); try: curl -i http://127.0.0.1:8080/" >&2
"$bin/ringway" --config examples/quickstart.toml
