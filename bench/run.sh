#!/usr/bin/env bash
# sensorcast side by side with nchan on this machine: builds release, raises the open-files
# limit, makes sure nginx's nchan module is installed, then runs the driver. Any arguments are
# passed to it (`bench/run.sh --help`); the defaults finish in a few minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

module=/usr/lib/nginx/modules/ngx_nchan_module.so
if [[ ! -e $module ]]; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "== installing nginx's nchan module (libnginx-mod-nchan)" >&2
    apt-get install -y -qq libnginx-mod-nchan nginx >/dev/null
  else
    echo "nchan is missing: sudo apt-get install -y libnginx-mod-nchan nginx" >&2
    exit 1
  fi
fi

echo "== cargo build --release (sensorcast, sensorcast-bench)" >&2
cargo build --release --locked -p sensorcast -p sensorcast-bench >&2

# Every generator process and server inherits this; each may hold at most this many streams.
ulimit -n "$(ulimit -Hn)"

pg=()
if [[ -z ${SENSORCAST_BENCH_PG-} ]] && command -v pg_isready >/dev/null \
  && pg_isready -q -h 127.0.0.1 -p 5432; then
  SENSORCAST_BENCH_PG=postgres://postgres@127.0.0.1:5432
fi
if [[ -n ${SENSORCAST_BENCH_PG-} ]]; then
  pg=(--pg-url "$SENSORCAST_BENCH_PG")
fi

exec target/release/sensorcast-bench run --bin-dir target/release "${pg[@]}" "$@"
