#!/usr/bin/env bash
# PostgreSQL benchmark: ferry export/import against DuckDB, pg_dump/pg_restore and raw
# psql \copy (FORMAT binary) on the same table, in one run, alternating rounds.
# See bench/README.md. Usage: bash bench/pg.sh
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)

PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432/test}
BENCH_DB=${BENCH_DB:-ferry_bench}
ROWS=${ROWS:-5000000}
ROUNDS=${ROUNDS:-3}
BENCH_CACHE=${BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferry-bench}
BENCH_OUT=${BENCH_OUT:-$BENCH_CACHE/results}
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SKIP_FERRY=${SKIP_FERRY:-0}
SKIP_DUCKDB=${SKIP_DUCKDB:-0}
KEEP_WORK=${KEEP_WORK:-0}
FERRY_BIN=${FERRY_BIN:-}
# Extra arguments for ferry (split on spaces), e.g. FERRY_EXPORT_ARGS="--jobs 2".
read -r -a FERRY_EXPORT_ARGS <<<"${FERRY_EXPORT_ARGS:-}"
read -r -a FERRY_IMPORT_ARGS <<<"${FERRY_IMPORT_ARGS:-}"
DUCKDB_VERSION=1.4.4
# No NOTICEs ("does not exist, skipping") from DROP ... IF EXISTS.
export PGOPTIONS="${PGOPTIONS:+$PGOPTIONS }-c client_min_messages=warning"

TABLE=events
SQL_FILE=$BENCH_DIR/events-pg.sql
# Scratch databases (dropped on exit); the source database is kept for re-runs.
DB_FERRY=${BENCH_DB}_import_ferry
DB_RESTORE=${BENCH_DB}_import_pg_restore
DB_COPY=${BENCH_DB}_import_copy
SCRATCH_DBS=("$DB_FERRY" "$DB_RESTORE" "$DB_COPY")

WORK=
RAW=
SOURCE_BYTES=0
LOAD_START=-
LOAD_END=-
FAILED=()
DUCKDB_OK=0
DUCKDB_WHY=
FERRY=
PY=
EXT=

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- connection strings ----------------------------------------------------------------

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

fresh_db() {
  admin_sql "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)"
  admin_sql "CREATE DATABASE \"$1\""
}

cleanup() {
  local rc=$?
  set +e
  if [[ -n $PGURL ]]; then
    for db in "${SCRATCH_DBS[@]}"; do
      psql -X -q -d "$PGURL" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1
    done
  fi
  if [[ -n $WORK && -d $WORK ]]; then
    if [[ $KEEP_WORK == 1 ]]; then log "kept $WORK"; else rm -rf -- "$WORK"; fi
  fi
  exit "$rc"
}

# --- setup -----------------------------------------------------------------------------

check_tools() {
  local t
  for t in psql pg_dump pg_restore python3 cargo; do
    [[ $t == cargo && ($SKIP_FERRY == 1 || -n $FERRY_BIN) ]] && continue
    command -v "$t" >/dev/null || die "$t not found"
  done
  if [[ ! -x /usr/bin/time ]]; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
      log "installing GNU time (apt package 'time')"
      apt-get install -y -q time >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q time >/dev/null; }
    fi
    [[ -x /usr/bin/time ]] || die "GNU time (/usr/bin/time) is needed: apt-get install time"
  fi
  [[ $PGURL =~ ^postgres(ql)?://[^/]*/ ]] || die "PGURL must be a postgres://HOST/DB URL, got: $PGURL"
  [[ $ROWS =~ ^[1-9][0-9]*$ ]] || die "ROWS must be a positive integer, got: $ROWS"
  [[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, got: $ROUNDS"
  [[ -f $SQL_FILE ]] || die "$SQL_FILE is missing"
  admin_sql "SELECT 1" >/dev/null || die "cannot connect to $PGURL"
}

build_ferry() {
  if [[ $SKIP_FERRY == 1 ]]; then log "SKIP_FERRY=1: ferry is not measured"; return; fi
  if [[ -n $FERRY_BIN ]]; then
    FERRY=$FERRY_BIN
    [[ -x $FERRY ]] || die "FERRY_BIN=$FERRY_BIN is not an executable"
    log "using $FERRY (FERRY_BIN; not building)"
  else
    log "building ferry (release, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    (cd "$ROOT" && CARGO_TARGET_DIR=$CARGO_TARGET_DIR cargo build --release --quiet --bin ferry) \
      || die "cargo build failed"
    FERRY=$CARGO_TARGET_DIR/release/ferry
    [[ -x $FERRY ]] || die "$FERRY not found after the build"
  fi
  "$FERRY" keygen "$WORK/bench.key" >"$WORK/keygen.log" 2>&1 \
    || { cat "$WORK/keygen.log" >&2; die "ferry keygen failed"; }
}

# Loads the benchmark table unless it already holds ROWS rows.
load_source() {
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
    log "loading $ROWS rows into $BENCH_DB.$TABLE (had $have; 5M rows take a minute or two)"
    sed "s/5000000::bigint/${ROWS}::bigint/" "$SQL_FILE" \
      | psql -X -q -v ON_ERROR_STOP=1 -d "$(url_for "$BENCH_DB")" -o /dev/null \
      || die "loading $SQL_FILE failed"
  fi
  SOURCE_BYTES=$(db_sql "$BENCH_DB" "SELECT pg_total_relation_size('public.$TABLE')")
  log "source table: $(db_sql "$BENCH_DB" "SELECT pg_size_pretty($SOURCE_BYTES::bigint)") on disk"
}

# Python venv with duckdb and the postgres scanner from PyPI; the extension is LOADed
# from the wheel's file, never INSTALLed from the internet. Failure only drops the peer.
setup_duckdb() {
  PY=python3
  if [[ $SKIP_DUCKDB == 1 ]]; then DUCKDB_WHY="SKIP_DUCKDB=1"; return; fi
  local venv=$BENCH_CACHE/venv
  if [[ ! -x $venv/bin/python ]]; then
    log "creating $venv"
    python3 -m venv "$venv" || { DUCKDB_WHY="python3 -m venv failed"; return; }
  fi
  if ! "$venv/bin/python" -c "import duckdb, sys; sys.exit(duckdb.__version__ != '$DUCKDB_VERSION')" 2>/dev/null \
    || ! "$venv/bin/pip" show -q duckdb-ext-postgres >/dev/null 2>&1; then
    log "pip install duckdb==$DUCKDB_VERSION duckdb-ext-postgres"
    "$venv/bin/pip" install -q --disable-pip-version-check "duckdb==$DUCKDB_VERSION" duckdb-ext-postgres >&2 \
      || { DUCKDB_WHY="pip install duckdb==$DUCKDB_VERSION duckdb-ext-postgres failed"; return; }
  fi
  PY=$venv/bin/python
  local loc rel
  loc=$("$venv/bin/pip" show duckdb-ext-postgres 2>/dev/null | sed -n 's/^Location: //p')
  rel=$("$venv/bin/pip" show -f duckdb-ext-postgres 2>/dev/null | sed -n 's/^ *\(.*postgres_scanner\.duckdb_extension\)$/\1/p' | head -n1)
  if [[ -z $loc || -z $rel || ! -f $loc/$rel ]]; then
    DUCKDB_WHY="no postgres_scanner.duckdb_extension in the duckdb-ext-postgres package"
    return
  fi
  EXT=$loc/$rel
  local msg
  if msg=$("$PY" "$BENCH_DIR/duckdb_export.py" check "$EXT" "$(url_for "$BENCH_DB")" 2>&1); then
    DUCKDB_OK=1
    log "$msg ($EXT)"
  else
    DUCKDB_WHY="loading $EXT failed: $(tail -n 1 <<<"$msg")"
  fi
}

# --- measuring -------------------------------------------------------------------------

# Untimed, before every timed command: flush dirty pages and let PostgreSQL write its
# checkpoint now, so one tool's writes are not paid for by the next one.
settle() {
  sync
  admin_sql "CHECKPOINT" >/dev/null 2>&1 || true
}

# measure ROUND PHASE TOOL OUTPUT|- -- COMMAND...: times COMMAND with GNU time and appends
# one line to RAW; OUTPUT (file or directory) is measured with du after the run.
measure() {
  local round=$1 phase=$2 tool=$3 output=$4
  shift 5
  settle
  local tf=$WORK/time.txt lf=$WORK/$tool.log
  local rc=0
  /usr/bin/time -f '%e %M' -o "$tf" "$@" >"$lf" 2>&1 || rc=$?
  # GNU time exits 128+N when the command died of signal N; it shields the shell from
  # Ctrl-C itself, so stop here on SIGINT/SIGTERM instead of carrying on.
  if ((rc == 130 || rc == 143)); then
    log "$tool interrupted"
    exit "$rc"
  fi
  if ((rc != 0)); then
    log "$tool failed (round $round, exit $rc): $*"
    sed 's/^/    /' "$lf" | tail -n 20 >&2
    FAILED+=("$tool")
    return 1
  fi
  local secs rss bytes=-
  read -r secs rss < <(tail -n 1 "$tf")
  [[ $output != - ]] && bytes=$(du -sb -- "$output" | cut -f1)
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$phase" "$tool" "$secs" "$rss" "$bytes" >>"$RAW"
  log "  $tool: ${secs}s, peak RSS $((rss / 1024)) MiB$([[ $bytes != - ]] && echo ", $((bytes / 1000000)) MB")"
}

failed() { [[ " ${FAILED[*]-} " == *" $1 "* ]]; }

# check_import DB TOOL: the loaded table must have every row and a primary key.
check_import() {
  local n pk
  n=$(db_sql "$1" "SELECT count(*) FROM public.$TABLE" 2>/dev/null || echo "no table")
  pk=$(db_sql "$1" "SELECT count(*) FROM pg_index WHERE indrelid = 'public.$TABLE'::regclass AND indisprimary" 2>/dev/null || echo 0)
  if [[ $n != "$ROWS" ]]; then
    log "warning: $2 left $n rows in $1, expected $ROWS"
  fi
  if [[ $pk != 1 ]]; then
    log "warning: $2 left no primary key on $1.$TABLE"
  fi
}

# Table + primary key for the \copy FROM peer, taken from the benchmark SQL.
create_copy_table() {
  sed -n "/^CREATE TABLE $TABLE/,/^);/p" "$SQL_FILE" \
    | psql -X -q -v ON_ERROR_STOP=1 -d "$(url_for "$1")" -o /dev/null
}

# One function per tool and phase; $r is the round, $d its scratch directory, $src the
# source URL (set by run_round).
export_ferry() {
  [[ $SKIP_FERRY != 1 ]] && ! failed ferry_export || return 0
  measure "$r" export ferry_export "$d/bundle" -- \
    "$FERRY" export "$src" "$d/bundle" --key-file "$WORK/bench.key" --table "$TABLE" --quiet \
    ${FERRY_EXPORT_ARGS[@]+"${FERRY_EXPORT_ARGS[@]}"} || true
}
export_duckdb() {
  [[ $DUCKDB_OK == 1 ]] && ! failed duckdb || return 0
  measure "$r" export duckdb "$d/events.parquet" -- \
    "$PY" "$BENCH_DIR/duckdb_export.py" export "$EXT" "$src" "public.$TABLE" "$d/events.parquet" || true
}
export_pg_dump() {
  ! failed pg_dump || return 0
  measure "$r" export pg_dump "$d/events.dump" -- \
    pg_dump -Fc -t "$TABLE" -f "$d/events.dump" -d "$src" || true
}
export_copy_file() {
  ! failed copy_out_file || return 0
  measure "$r" export copy_out_file "$d/events.bin" -- \
    psql -X -q -v ON_ERROR_STOP=1 -d "$src" -c "\\copy $TABLE TO '$d/events.bin' (FORMAT binary)" || true
}
export_copy_null() {
  ! failed copy_out_null || return 0
  measure "$r" export copy_out_null - -- \
    sh -c 'exec psql -X -q -v ON_ERROR_STOP=1 -d "$1" -c "\\copy $2 TO STDOUT (FORMAT binary)" >/dev/null' \
    sh "$src" "$TABLE" || true
}
import_ferry() {
  [[ $SKIP_FERRY != 1 && -d $d/bundle ]] && ! failed ferry_export && ! failed ferry_import || return 0
  fresh_db "$DB_FERRY"
  measure "$r" import ferry_import - -- \
    "$FERRY" import "$d/bundle" "$(url_for "$DB_FERRY")" --key-file "$WORK/bench.key" --quiet \
    ${FERRY_IMPORT_ARGS[@]+"${FERRY_IMPORT_ARGS[@]}"} \
    && check_import "$DB_FERRY" "ferry import" || true
  admin_sql "DROP DATABASE IF EXISTS \"$DB_FERRY\" WITH (FORCE)"
}
import_copy() {
  [[ -f $d/events.bin ]] && ! failed copy_in || return 0
  fresh_db "$DB_COPY"
  create_copy_table "$DB_COPY"
  measure "$r" import copy_in - -- \
    psql -X -q -v ON_ERROR_STOP=1 -d "$(url_for "$DB_COPY")" -c "\\copy $TABLE FROM '$d/events.bin' (FORMAT binary)" \
    && check_import "$DB_COPY" "psql \\copy" || true
  admin_sql "DROP DATABASE IF EXISTS \"$DB_COPY\" WITH (FORCE)"
}
import_pg_restore() {
  [[ -f $d/events.dump ]] && ! failed pg_restore || return 0
  fresh_db "$DB_RESTORE"
  measure "$r" import pg_restore - -- \
    pg_restore --exit-on-error -d "$(url_for "$DB_RESTORE")" "$d/events.dump" \
    && check_import "$DB_RESTORE" "pg_restore" || true
  admin_sql "DROP DATABASE IF EXISTS \"$DB_RESTORE\" WITH (FORCE)"
}

EXPORTS=(export_ferry export_duckdb export_pg_dump export_copy_file export_copy_null)
IMPORTS=(import_ferry import_copy import_pg_restore)

# run_rotated R STEP...: runs the steps starting at the (R-1)th, wrapping around, so that
# no tool always goes first (the first import of a run, for one, also pays for new WAL files).
run_rotated() {
  local k=$1 n i
  shift
  n=$#
  local steps=("$@")
  for ((i = 0; i < n; i++)); do "${steps[(i + k - 1) % n]}"; done
}

# warm_up: one unmeasured read of the source table and one unmeasured load, so that the
# first tool of round 1 does not alone pay for a table partly out of the page cache or for
# the server's new WAL files (in the four runs before it, ferry, first in round 1, was
# 1-1.5 s slower there than in the other rounds, on export and on import alike; with it,
# the first command of a phase is still slower in some runs: the medians absorb it).
warm_up() {
  local src d=$WORK/warmup
  src=$(url_for "$BENCH_DB")
  mkdir -p "$d"
  log "warm-up: one read of $TABLE and one load, not measured"
  psql -X -q -v ON_ERROR_STOP=1 -d "$src" -c "\\copy $TABLE TO '$d/events.bin' (FORMAT binary)" >/dev/null
  fresh_db "$DB_COPY"
  create_copy_table "$DB_COPY"
  psql -X -q -v ON_ERROR_STOP=1 -d "$(url_for "$DB_COPY")" \
    -c "\\copy $TABLE FROM '$d/events.bin' (FORMAT binary)" >/dev/null
  admin_sql "DROP DATABASE IF EXISTS \"$DB_COPY\" WITH (FORCE)"
  rm -rf -- "$d"
  settle
}

run_round() {
  local r=$1 d=$WORK/round$1 src
  src=$(url_for "$BENCH_DB")
  mkdir -p "$d"
  log "round $r/$ROUNDS: export"
  run_rotated "$r" "${EXPORTS[@]}"
  log "round $r/$ROUNDS: import"
  run_rotated "$r" "${IMPORTS[@]}"
  # Keep the last round's files for a look when KEEP_WORK=1.
  [[ $KEEP_WORK == 1 && $r == "$ROUNDS" ]] || rm -rf -- "$d"
}

# Other work on the machine (a cargo build, a test suite) skews every figure.
warn_if_busy() {
  local load
  load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null) || return 0
  if awk -v l="$load" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
    log "warning: load average is $load on $(nproc) CPUs: the machine is busy, figures will be noisy"
  fi
}

write_meta() {
  local ferry_version=- ferry_rev=-
  if [[ -n $FERRY ]]; then
    ferry_version=$("$FERRY" --version 2>/dev/null || echo -)
    if [[ -n $FERRY_BIN ]]; then
      ferry_rev="prebuilt: $FERRY_BIN"
    else
      ferry_rev=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo -)
    fi
  fi
  ROWS=$ROWS ROUNDS=$ROUNDS SOURCE_BYTES=$SOURCE_BYTES DUCKDB_WHY=$DUCKDB_WHY \
  FERRY_VERSION=$ferry_version FERRY_REV=$ferry_rev FAILED="${FAILED[*]-}" \
  FERRY_XE="${FERRY_EXPORT_ARGS[*]-}" FERRY_XI="${FERRY_IMPORT_ARGS[*]-}" \
  PG_VERSION=$(admin_sql "SHOW server_version") CPUS=$(nproc) \
  LOAD_START=$LOAD_START LOAD_END=$LOAD_END \
  DUCKDB_VERSION=$([[ $DUCKDB_OK == 1 ]] && echo "$DUCKDB_VERSION" || echo -) \
    python3 - "$1" <<'EOF'
import datetime, json, os, platform, sys
e = os.environ
meta = {
    "benchmark": "postgresql",
    "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    "rows": int(e["ROWS"]),
    "rounds": int(e["ROUNDS"]),
    "source_table_bytes": int(e["SOURCE_BYTES"]),
    "host": {
        "cpus": int(e["CPUS"]),
        "platform": platform.platform(),
        "loadavg_start": e["LOAD_START"],
        "loadavg_end": e["LOAD_END"],
    },
    "postgresql": e["PG_VERSION"],
    "ferry": {
        "version": e["FERRY_VERSION"],
        "git": e["FERRY_REV"],
        "export_args": e["FERRY_XE"].split(),
        "import_args": e["FERRY_XI"].split(),
    },
    "duckdb": e["DUCKDB_VERSION"],
    "duckdb_skipped_because": e["DUCKDB_WHY"] or None,
    "failed": sorted(set(e["FAILED"].split())),
}
json.dump(meta, open(sys.argv[1], "w"), indent=2)
EOF
}

main() {
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  check_tools
  mkdir -p "$BENCH_CACHE" "$BENCH_OUT"
  WORK=$(mktemp -d "$BENCH_CACHE/work.XXXXXX")
  RAW=$WORK/raw.tsv
  : >"$RAW"
  build_ferry
  load_source
  setup_duckdb
  [[ $DUCKDB_OK == 1 ]] || log "DuckDB peer skipped: $DUCKDB_WHY"

  LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo -)
  warn_if_busy
  warm_up
  local r
  for ((r = 1; r <= ROUNDS; r++)); do run_round "$r"; done
  LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo -)

  local stamp out
  stamp=$(date +%Y%m%d-%H%M%S)
  out=$BENCH_OUT/pg-$stamp.json
  write_meta "$WORK/meta.json"
  python3 "$BENCH_DIR/report.py" "$RAW" "$WORK/meta.json" "$out"
  [[ $DUCKDB_OK == 1 ]] || echo "DuckDB peer skipped: $DUCKDB_WHY"
  if ((${#FAILED[@]})); then
    echo "failed: ${FAILED[*]}" >&2
    return 1
  fi
}

main "$@"
