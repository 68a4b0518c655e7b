#!/usr/bin/env bash
# The soak of issue 7: sensorcast on SQLite holding 10,000 streams while 100 TS302s post 100
# signed webhooks/s for 30 minutes (about 36 minutes end to end). Builds release, raises the
# open-files limit, then runs the driver; any arguments are passed to it
# (`bench/soak.sh --help`). Exits non-zero if RSS grows by 5 % or more after warm-up, or on
# any error.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo build --release (sensorcast, sensorcast-bench)" >&2
cargo build --release --locked -p sensorcast -p sensorcast-bench >&2

# Every generator process and the server inherit this.
ulimit -n "$(ulimit -Hn)"

exec target/release/sensorcast-bench soak --bin-dir target/release "$@"
