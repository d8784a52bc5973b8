#!/usr/bin/env bash
# MySQL/MariaDB benchmark: ferry export/import against mysqldump --single-transaction,
# reloading that dump with the mariadb client, mydumper/myloader -t 2 (when installed), and a
# whole MariaDB -> MariaDB move against the row-by-row copy of a hand-written migration
# (bench/rowcopy.py), on the same table, alternating rounds.
# See bench/README.md. Usage: bash bench/mysql.sh   (quick check: ROWS=200000 ROUNDS=1)
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)

MYURL=${MYURL:-mysql://root@127.0.0.1:3306/test}
BENCH_DB=${BENCH_DB:-ferry_bench}
ROWS=${ROWS:-2000000}
ROUNDS=${ROUNDS:-3}
BENCH_CACHE=${BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferry-bench}
BENCH_OUT=${BENCH_OUT:-$BENCH_CACHE/results}
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
KEEP_WORK=${KEEP_WORK:-0}
# The row-by-row baseline copies ROWCOPY_ROWS rows (default 200000: at a few thousand rows/s
# the whole table would take minutes per round); it is compared as rows/s. SKIP_ROWCOPY=1 or
# SKIP_MYLOADER=1 leave those peers out.
ROWCOPY_ROWS=${ROWCOPY_ROWS:-200000}
SKIP_ROWCOPY=${SKIP_ROWCOPY:-0}
SKIP_MYLOADER=${SKIP_MYLOADER:-0}
FERRY_BIN=${FERRY_BIN:-}
read -r -a FERRY_EXPORT_ARGS <<<"${FERRY_EXPORT_ARGS:-}"
read -r -a FERRY_IMPORT_ARGS <<<"${FERRY_IMPORT_ARGS:-}"

TABLE=events
SQL_FILE=$BENCH_DIR/events-mysql.sql
DB_FERRY=${BENCH_DB}_import_ferry
DB_DUMP=${BENCH_DB}_import_dump
DB_MYLOADER=${BENCH_DB}_import_myloader
DB_MOVE=${BENCH_DB}_move_ferry
DB_ROWCOPY=${BENCH_DB}_move_rowcopy

WORK=
RAW=
FERRY=
CLIENT=
DUMP=
CONN=()
MYDUMPER=
MYLOADER=
ROWCOPY_PY=

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- connection ------------------------------------------------------------------------

# Client options from MYURL (mysql://user:pw@host:port/db); the password goes through
# MYSQL_PWD so it is not on any command line.
parse_url() {
  [[ $MYURL =~ ^(mysql|mariadb)://(([^:@/]*)(:([^@/]*))?@)?([^:/]+)(:([0-9]+))?(/.*)?$ ]] \
    || die "MYURL must look like mysql://user:pw@host:port/db, got: $MYURL"
  local user=${BASH_REMATCH[3]:-root} pw=${BASH_REMATCH[5]:-} host=${BASH_REMATCH[6]} port=${BASH_REMATCH[8]:-3306}
  CONN=(--protocol=tcp -h "$host" -P "$port" -u "$user" --default-character-set=utf8mb4)
  # mydumper, myloader and rowcopy.py read the password from MYSQL_PWD too.
  MY_HOST=$host MY_PORT=$port MY_USER=$user
  [[ -n $pw ]] && export MYSQL_PWD=$pw
  URL_BASE="mysql://$user${pw:+:$pw}@$host:$port"
}

url_for() { printf '%s/%s' "$URL_BASE" "$1"; }
sql() { "$CLIENT" "${CONN[@]}" -N -B -e "$1"; }
db_sql() { "$CLIENT" "${CONN[@]}" -N -B "$1" -e "$2"; }
fresh_db() { sql "DROP DATABASE IF EXISTS \`$1\`; CREATE DATABASE \`$1\` CHARACTER SET utf8mb4"; }

cleanup() {
  local rc=$?
  set +e
  if [[ -n $CLIENT ]]; then
    for db in "$DB_FERRY" "$DB_DUMP" "$DB_MYLOADER" "$DB_MOVE" "$DB_ROWCOPY"; do sql "DROP DATABASE IF EXISTS \`$db\`" >/dev/null 2>&1; done
  fi
  if [[ -n $WORK && -d $WORK ]]; then
    if [[ $KEEP_WORK == 1 ]]; then log "kept $WORK"; else rm -rf -- "$WORK"; fi
  fi
  exit "$rc"
}

# --- setup -----------------------------------------------------------------------------

check_tools() {
  CLIENT=$(command -v mariadb || command -v mysql || true)
  DUMP=$(command -v mariadb-dump || command -v mysqldump || true)
  [[ -n $CLIENT ]] || die "neither mariadb nor mysql (the client) is installed"
  [[ -n $DUMP ]] || die "neither mariadb-dump nor mysqldump is installed"
  command -v python3 >/dev/null || die "python3 not found"
  [[ -n $FERRY_BIN ]] || command -v cargo >/dev/null || die "cargo not found (or set FERRY_BIN)"
  [[ -x /usr/bin/time ]] || die "GNU time (/usr/bin/time) is needed: apt-get install time"
  [[ $ROWS =~ ^[1-9][0-9]*$ ]] || die "ROWS must be a positive integer, got: $ROWS"
  [[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, got: $ROUNDS"
  parse_url
  sql "SELECT 1" >/dev/null || die "cannot connect to $MYURL"
  if [[ $SKIP_MYLOADER != 1 ]]; then
    MYDUMPER=$(command -v mydumper || true)
    MYLOADER=$(command -v myloader || true)
    [[ -n $MYDUMPER && -n $MYLOADER ]] \
      || { log "mydumper/myloader not installed (Debian: apt-get install mydumper): running without them"; MYDUMPER= MYLOADER=; }
  fi
}

# A virtualenv with SQLAlchemy and PyMySQL for bench/rowcopy.py.
setup_rowcopy() {
  [[ $SKIP_ROWCOPY == 1 ]] && return 0
  local venv=$BENCH_CACHE/venv-rowcopy
  if ! "$venv/bin/python" -c "import sqlalchemy, pymysql" 2>/dev/null; then
    log "pip install sqlalchemy pymysql into $venv"
    { python3 -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check \
        'sqlalchemy==2.0.*' 'pymysql==1.1.*' >&2; } \
      || { log "could not install SQLAlchemy/PyMySQL: running without the row-by-row baseline"; return 0; }
  fi
  ROWCOPY_PY=$venv/bin/python
}

build_ferry() {
  if [[ -n $FERRY_BIN ]]; then
    FERRY=$FERRY_BIN
  else
    log "building ferry (release, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    (cd "$ROOT" && CARGO_TARGET_DIR=$CARGO_TARGET_DIR cargo build --release --quiet --bin ferry) \
      || die "cargo build failed"
    FERRY=$CARGO_TARGET_DIR/release/ferry
  fi
  [[ -x $FERRY ]] || die "$FERRY is not an executable"
  "$FERRY" keygen "$WORK/bench.key" >/dev/null 2>&1 || die "ferry keygen failed"
}

# Loads the table unless it already holds ROWS rows.
load_source() {
  sql "CREATE DATABASE IF NOT EXISTS \`$BENCH_DB\` CHARACTER SET utf8mb4"
  local have
  have=$(db_sql "$BENCH_DB" "SELECT COUNT(*) FROM $TABLE" 2>/dev/null || echo 0)
  if [[ $have == "$ROWS" ]]; then
    log "$BENCH_DB.$TABLE already has $ROWS rows: not reloading"
  else
    log "loading $ROWS rows into $BENCH_DB.$TABLE (had $have)"
    sed "s/seq_1_to_2000000/seq_1_to_$ROWS/" "$SQL_FILE" | "$CLIENT" "${CONN[@]}" "$BENCH_DB" \
      || die "loading $SQL_FILE failed"
  fi
  log "source table: $(db_sql "$BENCH_DB" "SELECT CONCAT(ROUND((DATA_LENGTH + INDEX_LENGTH) / 1048576), ' MiB') \
    FROM information_schema.TABLES WHERE TABLE_SCHEMA = '$BENCH_DB' AND TABLE_NAME = '$TABLE'") on disk"
}

# --- measuring -------------------------------------------------------------------------

# measure ROUND PHASE TOOL OUTPUT|- COMMAND...: wall time and peak RSS (GNU time) into RAW;
# MEASURE_ROWS (default ROWS) is the number of rows the command moves.
measure() {
  local round=$1 phase=$2 tool=$3 output=$4
  shift 4
  sync
  local tf=$WORK/time.txt lf=$WORK/$tool.log rc=0
  /usr/bin/time -f '%e %M' -o "$tf" "$@" >"$lf" 2>&1 || rc=$?
  ((rc == 130 || rc == 143)) && exit "$rc"
  if ((rc != 0)); then
    log "$tool failed (round $round, exit $rc)"
    tail -n 20 "$lf" | sed 's/^/    /' >&2
    return 1
  fi
  local secs rss bytes=-
  read -r secs rss < <(tail -n 1 "$tf")
  [[ $output != - ]] && bytes=$(du -sb -- "$output" | cut -f1)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$phase" "$tool" "$secs" "$rss" "$bytes" "${MEASURE_ROWS:-$ROWS}" >>"$RAW"
  log "  $tool: ${secs}s, peak RSS $((rss / 1024)) MiB$([[ $bytes != - ]] && echo ", $((bytes / 1000000)) MB")"
}

check_import() {
  local n pk
  n=$(db_sql "$1" "SELECT COUNT(*) FROM $TABLE" 2>/dev/null || echo "no table")
  pk=$(db_sql "$1" "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = '$1' \
        AND TABLE_NAME = '$TABLE' AND INDEX_NAME = 'PRIMARY'" 2>/dev/null || echo 0)
  [[ $n == "$ROWS" ]] || log "warning: $2 left $n rows in $1, expected $ROWS"
  [[ $pk == 1 ]] || log "warning: $2 left no primary key on $1.$TABLE"
}

export_ferry() {
  measure "$r" export ferry_export "$d/bundle" \
    "$FERRY" export "$(url_for "$BENCH_DB")" "$d/bundle" --key-file "$WORK/bench.key" --table "$TABLE" --quiet \
    ${FERRY_EXPORT_ARGS[@]+"${FERRY_EXPORT_ARGS[@]}"} || true
}
export_dump() {
  measure "$r" export mysqldump "$d/events.sql" \
    "$DUMP" "${CONN[@]}" --single-transaction --quick --skip-lock-tables \
    --result-file="$d/events.sql" "$BENCH_DB" "$TABLE" || true
}
import_ferry() {
  [[ -d $d/bundle ]] || return 0
  fresh_db "$DB_FERRY"
  measure "$r" import ferry_import - \
    "$FERRY" import "$d/bundle" "$(url_for "$DB_FERRY")" --key-file "$WORK/bench.key" --quiet \
    ${FERRY_IMPORT_ARGS[@]+"${FERRY_IMPORT_ARGS[@]}"} \
    && check_import "$DB_FERRY" "ferry import" || true
  sql "DROP DATABASE IF EXISTS \`$DB_FERRY\`"
}
import_dump() {
  [[ -f $d/events.sql ]] || return 0
  fresh_db "$DB_DUMP"
  measure "$r" import mariadb_reload - \
    bash -c 'exec "$1" "${@:3}" "$2" <"$0"' "$d/events.sql" "$CLIENT" "$DB_DUMP" "${CONN[@]}" \
    && check_import "$DB_DUMP" "mariadb < dump" || true
  sql "DROP DATABASE IF EXISTS \`$DB_DUMP\`"
}

export_mydumper() {
  [[ -n $MYDUMPER ]] || return 0
  measure "$r" export mydumper "$d/mydumper" \
    "$MYDUMPER" -h "$MY_HOST" -P "$MY_PORT" -u "$MY_USER" -B "$BENCH_DB" -T "$TABLE" \
    -r 250000 -t 2 -o "$d/mydumper" || true
}
import_myloader() {
  [[ -n $MYLOADER && -d $d/mydumper ]] || return 0
  sql "DROP DATABASE IF EXISTS \`$DB_MYLOADER\`"
  measure "$r" import myloader - \
    "$MYLOADER" -h "$MY_HOST" -P "$MY_PORT" -u "$MY_USER" -d "$d/mydumper" \
    -s "$BENCH_DB" -B "$DB_MYLOADER" -t 2 -o \
    && check_import "$DB_MYLOADER" "myloader -t 2" || true
  sql "DROP DATABASE IF EXISTS \`$DB_MYLOADER\`"
}
# The whole move, MariaDB -> MariaDB: ferry export then import (one timed command), against
# the row-by-row copy on ROWCOPY_ROWS rows; compared as rows/s.
move_ferry() {
  fresh_db "$DB_MOVE"
  measure "$r" move ferry_move - bash -c '"$1" export "$2" "$3" --key-file "$4" --table "$5" --quiet &&
      "$1" import "$3" "$6" --key-file "$4" --quiet' _ \
    "$FERRY" "$(url_for "$BENCH_DB")" "$d/move-bundle" "$WORK/bench.key" "$TABLE" "$(url_for "$DB_MOVE")" \
    && check_import "$DB_MOVE" "ferry move" || true
  rm -rf -- "$d/move-bundle"
  sql "DROP DATABASE IF EXISTS \`$DB_MOVE\`"
}
move_rowcopy() {
  [[ -n $ROWCOPY_PY ]] || return 0
  fresh_db "$DB_ROWCOPY"
  MEASURE_ROWS=$ROWCOPY_ROWS measure "$r" move rowcopy - \
    "$ROWCOPY_PY" "$BENCH_DIR/rowcopy.py" --limit "$ROWCOPY_ROWS" \
    "mysql+pymysql://$MY_USER@$MY_HOST:$MY_PORT/$BENCH_DB?charset=utf8mb4" \
    "mysql+pymysql://$MY_USER@$MY_HOST:$MY_PORT/$DB_ROWCOPY?charset=utf8mb4" "$TABLE" || true
  sql "DROP DATABASE IF EXISTS \`$DB_ROWCOPY\`"
}

run_round() {
  local r=$1 d=$WORK/round$1
  mkdir -p "$d"
  log "round $r/$ROUNDS"
  # Alternate which tool goes first.
  if ((r % 2)); then
    export_ferry; export_dump; export_mydumper; import_ferry; import_dump; import_myloader
    move_ferry; move_rowcopy
  else
    export_mydumper; export_dump; export_ferry; import_myloader; import_dump; import_ferry
    move_rowcopy; move_ferry
  fi
  [[ $KEEP_WORK == 1 && $r == "$ROUNDS" ]] || rm -rf -- "$d"
}

report() {
  python3 - "$RAW" "$1" "$ROWS" "$ROUNDS" "$(sql 'SELECT VERSION()')" <<'EOF'
import json, statistics, sys
raw, out, rows, rounds, server = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
runs = []
for line in open(raw):
    r, phase, tool, secs, rss, size, n = line.rstrip("\n").split("\t")
    runs.append(dict(round=int(r), phase=phase, tool=tool, seconds=float(secs), rows=int(n),
                     peak_rss_kib=int(rss), output_bytes=None if size == "-" else int(size)))
labels = {"ferry_export": "ferry export (encrypted)", "mysqldump": "mysqldump --single-transaction",
          "mydumper": "mydumper -r 250000 -t 2",
          "ferry_import": "ferry import (fresh database)", "mariadb_reload": "mariadb < dump (fresh database)",
          "myloader": "myloader -t 2 (fresh database)",
          "ferry_move": "ferry move (export + import)", "rowcopy": "row-by-row copy (rowcopy.py)"}
summary = {}
print(f"{rows} rows, {rounds} rounds, server {server}")
print(f"{'tool':40} {'median s':>9} {'min':>7} {'max':>7} {'rows/s':>10} {'peak RSS':>9} {'output':>9}")
for tool, label in labels.items():
    xs = [x for x in runs if x["tool"] == tool]
    if not xs:
        print(f"{label:40} {'(no run)':>9}")
        continue
    t = [x["seconds"] for x in xs]
    med = statistics.median(t)
    n = xs[0]["rows"]
    size = max((x["output_bytes"] or 0) for x in xs)
    rss = max(x["peak_rss_kib"] for x in xs) / 1024
    summary[tool] = dict(median_seconds=med, min=min(t), max=max(t), rows=n, rows_per_second=n / med if med else 0,
                         peak_rss_mib=rss, output_bytes=size or None)
    print(f"{label:40} {med:9.2f} {min(t):7.2f} {max(t):7.2f} {n / med if med else 0:10.0f} {rss:8.0f}M "
          f"{(str(round(size / 1e6)) + ' MB') if size else '-':>9}")
ratios = {}
for name, a, b in [("ferry export / mysqldump", "ferry_export", "mysqldump"),
                   ("ferry import / mariadb < dump", "ferry_import", "mariadb_reload"),
                   ("ferry import / myloader -t 2", "ferry_import", "myloader"),
                   ("bundle size / dump size", "ferry_export", "mysqldump")]:
    if a in summary and b in summary:
        key = "output_bytes" if "size" in name else "median_seconds"
        if summary[a][key] and summary[b][key]:
            ratios[name] = summary[a][key] / summary[b][key]
            verdict = "" if "size" in name else ("  (ferry faster)" if ratios[name] < 1 else "  (ferry SLOWER)")
            print(f"{name:40} {ratios[name]:9.3f}{verdict}")
if "ferry_move" in summary and "rowcopy" in summary and summary["rowcopy"]["rows_per_second"]:
    ratios["ferry move speed / row-by-row speed"] = x = summary["ferry_move"]["rows_per_second"] / summary["rowcopy"]["rows_per_second"]
    print(f"{'ferry move speed / row-by-row speed':40} {x:9.1f}x  (rows/s; row-by-row on {summary['rowcopy']['rows']} rows)")
json.dump(dict(benchmark="mysql", rows=rows, rounds=rounds, server=server, summary=summary,
               ratios=ratios, runs=runs), open(out, "w"), indent=2)
print(f"results: {out}")
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
  setup_rowcopy
  load_source
  local load
  load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)
  awk -v l="$load" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }' \
    && log "warning: load average is $load on $(nproc) CPUs: figures will be noisy"
  local r
  for ((r = 1; r <= ROUNDS; r++)); do run_round "$r"; done
  report "$BENCH_OUT/mysql-$(date +%Y%m%d-%H%M%S).json"
}

main "$@"
