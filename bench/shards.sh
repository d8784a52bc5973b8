#!/usr/bin/env bash
# Sharded export on PostgreSQL (issue #18, acceptance 4), with a release build:
#  1. exactness: a ROWS-row table exported by 3 shard workers (started out of order, one
#     killed with SIGKILL part-way and re-run), sealed, imports identical to a one-process
#     export; a row inserted after the coordinator took its snapshot is absent;
#  2. timing: ROUNDS alternating rounds of one `ferry export` process against a coordinator
#     plus 2 shard workers run at once plus `ferry seal` (wall time from the coordinator's
#     start to the seal's end), medians printed.
# See bench/README.md. Usage: bash bench/shards.sh
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432/test}
ROWS=${ROWS:-1000000}
ROUNDS=${ROUNDS:-3}
BENCH_DB=${BENCH_DB:-ferry_bench_shards}
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
FERRY=${FERRY_BIN:-}
export PGOPTIONS="${PGOPTIONS:+$PGOPTIONS }-c client_min_messages=warning"

log() { printf '[shards %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }
url_for() {
  local base=${PGURL%%\?*} query=
  [[ $PGURL == *\?* ]] && query="?${PGURL#*\?}"
  printf '%s://%s/%s%s' "${base%%://*}" "$(cut -d/ -f1 <<<"${base#*://}")" "$1" "$query"
}
admin() { psql -X -q -v ON_ERROR_STOP=1 -d "$PGURL" -Atc "$1"; }
sql() { psql -X -q -v ON_ERROR_STOP=1 -d "$(url_for "$1")" -Atc "$2"; }
fresh() { admin "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)"; admin "CREATE DATABASE \"$1\""; }
now() { date +%s.%N; }

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  set +e
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for db in "$BENCH_DB" "${BENCH_DB}_one" "${BENCH_DB}_many"; do
    psql -X -q -d "$PGURL" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1
  done
  rm -rf -- "$WORK"
}
trap cleanup EXIT

if [[ -z $FERRY ]]; then
  log "building ferry (release)"
  (cd "$ROOT" && CARGO_TARGET_DIR=$CARGO_TARGET_DIR cargo build --release --bin ferry -q)
  FERRY=$CARGO_TARGET_DIR/release/ferry
fi
"$FERRY" keygen "$WORK/key" >/dev/null
KEY=(--key-file "$WORK/key" --quiet)
SRC=$(url_for "$BENCH_DB")

log "loading $ROWS rows into $BENCH_DB.events"
fresh "$BENCH_DB"
sql "$BENCH_DB" "
  CREATE TABLE events (id bigint PRIMARY KEY, account int NOT NULL, amount numeric(12,2),
    score float8, name text, body text, active boolean, at timestamptz, day date, ref uuid, doc jsonb);
  INSERT INTO events SELECT g, g % 9973, (g * 37 % 1000000) / 100.0, g * 0.001,
    'user ' || g, CASE WHEN g % 20 = 0 THEN NULL ELSE repeat(md5(g::text), 1 + g % 3) END,
    g % 2 = 0, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second',
    date '2020-01-01' + (g % 2000), md5(g::text)::uuid,
    jsonb_build_object('n', g, 'tag', 't' || g % 17)
  FROM generate_series(1, $ROWS) g;"
sql "$BENCH_DB" "VACUUM ANALYZE events"
log "table size: $(sql "$BENCH_DB" "SELECT pg_size_pretty(pg_table_size('events'))")"

# coordinate DIR SHARDS: starts a coordinator in the background, waits for its plan.
coordinate() {
  "$FERRY" export "$SRC" "$1" --shards "$2" --coordinate "${KEY[@]}" >"$1.coord.log" 2>&1 &
  COORD=$!
  PIDS+=("$COORD")
  for _ in $(seq 1 600); do
    [[ -f $1/shard-plan.json ]] && return 0
    kill -0 "$COORD" 2>/dev/null || { cat "$1.coord.log"; die "the coordinator stopped"; }
    sleep 0.1
  done
  die "no shard plan after 60 s"
}

# --- 1. exactness ----------------------------------------------------------------------
log "exactness: one-process export"
"$FERRY" export "$SRC" "$WORK/one" "${KEY[@]}"
coordinate "$WORK/three" 3
sql "$BENCH_DB" "INSERT INTO events (id, account) VALUES (-1, 0)"
log "shard 2, then shard 1 killed with SIGKILL once its part is written (before its completion record), then shards 0 and 1"
"$FERRY" export "$SRC" "$WORK/three" --shard 2 "${KEY[@]}"
FERRY_PAUSE_AT=shard-item:1 FERRY_PAUSE_SECS=600 \
  "$FERRY" export "$SRC" "$WORK/three" --shard 1 "${KEY[@]}" 2>"$WORK/victim.log" &
victim=$!
for _ in $(seq 1 600); do grep -q "paused at shard-item 1" "$WORK/victim.log" && break; sleep 0.1; done
grep -q "paused at shard-item 1" "$WORK/victim.log" || die "shard 1 did not reach its pause point"
kill -9 "$victim"
wait "$victim" 2>/dev/null || true
[[ ! -f $WORK/three/shard-1.done.fe ]] || die "the killed shard left a completion record"
log "killed shard 1 (pid $victim) at its pause point: its part written, its record not"
"$FERRY" export "$SRC" "$WORK/three" --shard 0 "${KEY[@]}"
"$FERRY" export "$SRC" "$WORK/three" --shard 1 "${KEY[@]}"
"$FERRY" seal "$WORK/three" "${KEY[@]}"
wait "$COORD"
"$FERRY" verify "$WORK/three" --strict "${KEY[@]}"
fresh "${BENCH_DB}_one"
fresh "${BENCH_DB}_many"
"$FERRY" import "$WORK/one" "$(url_for "${BENCH_DB}_one")" "${KEY[@]}"
"$FERRY" import "$WORK/three" "$(url_for "${BENCH_DB}_many")" "${KEY[@]}"
"$FERRY" compare "$(url_for "${BENCH_DB}_one")" "$(url_for "${BENCH_DB}_many")" \
  || die "the sharded bundle's import differs from the one-process bundle's"
n=$(sql "${BENCH_DB}_many" "SELECT count(*) FROM events")
late=$(sql "${BENCH_DB}_many" "SELECT count(*) FROM events WHERE id = -1")
[[ $n == "$ROWS" && $late == 0 ]] || die "rows $n (want $ROWS), late row $late (want 0)"
log "exact: $n rows in both, the late row absent"
sql "$BENCH_DB" "DELETE FROM events WHERE id = -1"
rm -rf -- "$WORK/one" "$WORK/three"

# --- 2. timing -------------------------------------------------------------------------
ONE=()
TWO=()
for r in $(seq 1 "$ROUNDS"); do
  for which in one two; do
    [[ $((r % 2)) == 0 ]] && which=$([[ $which == one ]] && echo two || echo one)
    sync
    if [[ $which == one ]]; then
      t0=$(now)
      "$FERRY" export "$SRC" "$WORK/r$r-one" "${KEY[@]}"
      ONE+=("$(echo "$(now) - $t0" | bc)")
    else
      t0=$(now)
      coordinate "$WORK/r$r-two" 2
      "$FERRY" export "$SRC" "$WORK/r$r-two" --shard 0 "${KEY[@]}" &
      w0=$!
      "$FERRY" export "$SRC" "$WORK/r$r-two" --shard 1 "${KEY[@]}"
      wait "$w0"
      "$FERRY" seal "$WORK/r$r-two" "${KEY[@]}"
      wait "$COORD"
      TWO+=("$(echo "$(now) - $t0" | bc)")
    fi
  done
  log "round $r: one process ${ONE[-1]} s, 2 shard workers ${TWO[-1]} s"
  rm -rf -- "$WORK"/r"$r"-*
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
m1=$(median "${ONE[@]}")
m2=$(median "${TWO[@]}")
echo
printf 'rows %s, %s rounds, %s CPUs\n' "$ROWS" "$ROUNDS" "$(nproc)"
printf '%-32s %8.2f s  (%s)\n' "one export process" "$m1" "${ONE[*]}"
printf '%-32s %8.2f s  (%s)\n' "coordinator + 2 workers + seal" "$m2" "${TWO[*]}"
printf '%-32s %8.2f\n' "sharded / one process" "$(echo "$m2 / $m1" | bc -l)"
printf '%-32s %8.0f rows/s per worker\n' "one process rate" "$(echo "$ROWS / $m1" | bc -l)"
