#!/usr/bin/env bash
# `ferry compare` against `ferry export`: DESIGN.md asks that a compare of two 5M-row tables is
# not slower than exporting one of them. Times `ferry export` of the PostgreSQL benchmark
# table and `ferry compare` of that table with an identical copy in another database, in
# alternating rounds, and prints the ratio of the medians. See bench/README.md.
# Usage: bash bench/compare.sh
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)

PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432/test}
ROWS=${ROWS:-5000000}
# Its own source database: pg.sh reloads ferry_bench whenever ROWS differs.
BENCH_DB=${BENCH_DB:-ferry_bench_compare}
ROUNDS=${ROUNDS:-3}
BENCH_CACHE=${BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferry-bench}
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
FERRY_BIN=${FERRY_BIN:-}
KEEP_WORK=${KEEP_WORK:-0}
export PGOPTIONS="${PGOPTIONS:+$PGOPTIONS }-c client_min_messages=warning"

TABLE=events
SQL_FILE=$BENCH_DIR/events-pg.sql
DB_COPY=${BENCH_DB}_copy

WORK=
FERRY=
EXPORT_TIMES=()
COMPARE_TIMES=()

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

# url_for DB: PGURL with its database name replaced (query string kept).
url_for() {
  local base=${PGURL%%\?*} query=
  [[ $PGURL == *\?* ]] && query="?${PGURL#*\?}"
  local scheme=${base%%://*} rest=${base#*://}
  local host=${rest%%/*}
  printf '%s://%s/%s%s' "$scheme" "$host" "$1" "$query"
}

admin_sql() { psql -X -q -v ON_ERROR_STOP=1 -d "$PGURL" -Atc "$1"; }
db_sql() { psql -X -q -v ON_ERROR_STOP=1 -d "$(url_for "$1")" -Atc "$2"; }

cleanup() {
  local rc=$?
  set +e
  psql -X -q -d "$PGURL" -c "DROP DATABASE IF EXISTS \"$DB_COPY\" WITH (FORCE)" >/dev/null 2>&1
  if [[ -n $WORK && -d $WORK ]]; then
    if [[ $KEEP_WORK == 1 ]]; then log "kept $WORK"; else rm -rf -- "$WORK"; fi
  fi
  exit "$rc"
}

check_tools() {
  local t
  for t in psql python3; do command -v "$t" >/dev/null || die "$t not found"; done
  [[ -n $FERRY_BIN ]] || command -v cargo >/dev/null || die "cargo not found (or set FERRY_BIN)"
  [[ -x /usr/bin/time ]] || die "GNU time (/usr/bin/time) is needed: apt-get install time"
  [[ $PGURL =~ ^postgres(ql)?://[^/]*/ ]] || die "PGURL must be a postgres://HOST/DB URL, got: $PGURL"
  [[ $ROWS =~ ^[1-9][0-9]*$ ]] || die "ROWS must be a positive integer, got: $ROWS"
  [[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, got: $ROUNDS"
  admin_sql "SELECT 1" >/dev/null || die "cannot connect to $PGURL"
}

build_ferry() {
  if [[ -n $FERRY_BIN ]]; then
    FERRY=$FERRY_BIN
    [[ -x $FERRY ]] || die "FERRY_BIN=$FERRY_BIN is not an executable"
    log "using $FERRY (FERRY_BIN; not building)"
  else
    log "building ferry (release, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    (cd "$ROOT" && CARGO_TARGET_DIR=$CARGO_TARGET_DIR cargo build --release --quiet --bin ferry) \
      || die "cargo build failed"
    FERRY=$CARGO_TARGET_DIR/release/ferry
  fi
  "$FERRY" keygen "$WORK/bench.key" >/dev/null 2>&1 || die "ferry keygen failed"
}

# The source table (kept for re-runs with the same ROWS), then its copy: a new database made
# from the source as a template, so both hold the same rows in the same pages.
load_tables() {
  if [[ -z $(admin_sql "SELECT 1 FROM pg_database WHERE datname = '$BENCH_DB'") ]]; then
    admin_sql "CREATE DATABASE \"$BENCH_DB\""
  fi
  local have=0
  if [[ -n $(db_sql "$BENCH_DB" "SELECT to_regclass('public.$TABLE')") ]]; then
    have=$(db_sql "$BENCH_DB" "SELECT count(*) FROM public.$TABLE")
  fi
  if [[ $have == "$ROWS" ]]; then
    log "$BENCH_DB.$TABLE already has $ROWS rows: not reloading"
  else
    log "loading $ROWS rows into $BENCH_DB.$TABLE (had $have)"
    sed "s/5000000::bigint/${ROWS}::bigint/" "$SQL_FILE" \
      | psql -X -q -v ON_ERROR_STOP=1 -d "$(url_for "$BENCH_DB")" -o /dev/null \
      || die "loading $SQL_FILE failed"
  fi
  admin_sql "DROP DATABASE IF EXISTS \"$DB_COPY\" WITH (FORCE)"
  admin_sql "CREATE DATABASE \"$DB_COPY\" TEMPLATE \"$BENCH_DB\""
  log "copy: $DB_COPY ($(db_sql "$DB_COPY" "SELECT pg_size_pretty(pg_total_relation_size('public.$TABLE'))"))"
}

# timed NAME OUT -- COMMAND...: runs COMMAND under GNU time, appends seconds to the array
# named OUT, logs wall time and peak RSS. Exit status 1 from compare (a difference) fails it.
timed() {
  local name=$1 out=$2
  shift 3
  sync
  admin_sql "CHECKPOINT" >/dev/null 2>&1 || true
  local tf=$WORK/time.txt lf=$WORK/$name.log rc=0
  /usr/bin/time -f '%e %M' -o "$tf" "$@" >"$lf" 2>&1 || rc=$?
  if ((rc != 0)); then
    log "$name failed (exit $rc): $*"
    sed 's/^/    /' "$lf" | tail -n 20 >&2
    exit 1
  fi
  local secs rss
  read -r secs rss < <(tail -n 1 "$tf")
  log "  $name: ${secs}s, peak RSS $((rss / 1024)) MiB"
  eval "$out+=(\"\$secs\")"
}

run_round() {
  local r=$1 src copy
  src=$(url_for "$BENCH_DB")
  copy=$(url_for "$DB_COPY")
  rm -rf -- "$WORK/bundle"
  log "round $r/$ROUNDS"
  # Alternate which goes first: the first command of a round may find colder caches.
  local steps=(export compare) i
  ((r % 2 == 0)) && steps=(compare export)
  for i in "${steps[@]}"; do
    if [[ $i == export ]]; then
      timed ferry_export EXPORT_TIMES -- \
        "$FERRY" export "$src" "$WORK/bundle" --key-file "$WORK/bench.key" --table "$TABLE" --quiet
      rm -rf -- "$WORK/bundle"
    else
      timed ferry_compare COMPARE_TIMES -- \
        "$FERRY" compare "$src" "$copy" --table "$TABLE" --quiet
    fi
  done
}

main() {
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  check_tools
  mkdir -p "$BENCH_CACHE"
  WORK=$(mktemp -d "$BENCH_CACHE/compare.XXXXXX")
  build_ferry
  load_tables
  local r
  for ((r = 1; r <= ROUNDS; r++)); do run_round "$r"; done
  python3 - "$ROWS" "${EXPORT_TIMES[*]}" "${COMPARE_TIMES[*]}" <<'EOF'
import statistics, sys
rows = int(sys.argv[1])
exp = [float(x) for x in sys.argv[2].split()]
cmp = [float(x) for x in sys.argv[3].split()]
e, c = statistics.median(exp), statistics.median(cmp)
print(f"rows: {rows}, rounds: {len(exp)}")
print(f"ferry export  (one table):            median {e:8.2f} s  ({rows / e:,.0f} rows/s)  [{min(exp):.2f} … {max(exp):.2f}]")
print(f"ferry compare (the table and a copy): median {c:8.2f} s  ({rows / c:,.0f} rows/s per side)  [{min(cmp):.2f} … {max(cmp):.2f}]")
print(f"compare / export: {c / e:.2f} (target ≤ 1.00)")
EOF
}

main "$@"
