#!/usr/bin/env bash
# The world's append beside DuckDB's load of the same NDJSON, in one run (issue 15).
#
#   benches/world_append.sh [FACILITIES] [MONTHS]      (defaults: 2000 36)
#
# Builds the release binary, generates the world, appends it to a new ledger under
# /usr/bin/time, then loads the same NDJSON into a DuckDB table (the `duckdb` Python
# package) and prints both, their ratio, peak RSS and the data directory's size beside
# the segments'. Beside them, the floor of any append that checks every signature: the
# world's entries checked on every core at the rate `benches/signatures.rs` measures in
# the same run (entries of the world's mean size), with `verify_strict` and with the
# ledger's own check. Prints figures; asserts nothing. Needs python3 with duckdb installed.
set -euo pipefail
facilities=${1:-2000}
months=${2:-36}
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --locked --manifest-path "$root/Cargo.toml" >&2
cargo bench --no-run --locked --manifest-path "$root/Cargo.toml" --bench signatures >&2
bin="${CARGO_TARGET_DIR:-$root/target}/release/dcledger"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$bin" gen --facilities "$facilities" --months "$months" --seed 1 --out "$work/world" >/dev/null
keys="$work/world/keys"
"$bin" init --data "$work/data" --origin dcledger.example/synthetic \
    --authority-key "$keys/authority.pem" --log-key "$keys/log.pem" >/dev/null
entries=$(wc -l < "$work/world/entries.ndjson")
/usr/bin/time -f "%e %M" -o "$work/time" \
    "$bin" append --data "$work/data" --log-key "$keys/log.pem" "$work/world/entries.ndjson" >/dev/null 2>&1
read -r append_s rss_kb < "$work/time"
duck_s=$(python3 - "$work/world/entries.ndjson" "$work/duck.db" <<'PY'
import sys, time, duckdb
con = duckdb.connect(sys.argv[2])
start = time.time()
con.execute("create table e as select * from read_json(?, format='newline_delimited', "
            "maximum_depth=2, maximum_object_size=10000000)", [sys.argv[1]])
print(f"{time.time() - start:.3f}")
PY
)
# The mean entry: a line less `{"entry":`, `,"sig":"<128 hex>"}` and its newline.
entry_bytes=$(( $(wc -c < "$work/world/entries.ndjson") / entries - 148 ))
signature_rates=$(cargo bench --locked --manifest-path "$root/Cargo.toml" --bench signatures -- "$entry_bytes")
strict_rate=$(awk '$1 == "verify_strict" {print $2}' <<< "$signature_rates")
own_rate=$(awk '$1 == "own" {print $2}' <<< "$signature_rates")
data_mb=$(du -sm "$work/data" | cut -f1)
segments_mb=$(du -sm "$work/data/segments" | cut -f1)
awk -v n="$entries" -v a="$append_s" -v d="$duck_s" -v r="$rss_kb" -v dm="$data_mb" -v sm="$segments_mb" \
    -v vs="$strict_rate" -v own="$own_rate" -v eb="$entry_bytes" 'BEGIN {
    printf "world: %d entries\n", n
    printf "dcledger append:   %8.2f s  %8.0f entries/s  peak RSS %d MB\n", a, n / a, r / 1024
    printf "duckdb load:       %8.2f s  (the same NDJSON into a table, same run)\n", d
    printf "append / duckdb:   %8.1f x\n", a / d
    printf "signatures alone:  %8.2f s  with verify_strict (%.0f/s on every core, %d-byte entries): %.1f x duckdb\n", n / vs, vs, eb, n / vs / d
    printf "                   %8.2f s  with the ledger'"'"'s own check (%.0f/s): %.1f x duckdb\n", n / own, own, n / own / d
    printf "data directory:    %d MB on disk, segments %d MB (%.2f x)\n", dm, sm, dm / sm
}'
