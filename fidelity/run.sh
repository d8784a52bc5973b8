#!/usr/bin/env bash
# Same-engine fidelity suite on published sample databases (see fidelity/README.md).
#
#   fidelity/run.sh FERRY_BINARY [DATA_DIR] [SCHEMA...]
#
# DATA_DIR defaults to $FERRY_FIDELITY_DATA (fill it with fidelity/fetch-data.sh). SCHEMA
# limits the run to some of: pg_northwind pg_pagila pg_pagila010 pg_world pg_chinook
# pg_adventureworks pg_omnibus my_sakila my_employees my_world my_chinook.
#
# For each schema: load it into a fresh source database, `ferry export` it, `ferry import`
# the bundle into a fresh, empty target database of the same engine, and compare the two
# (rows, columns, keys, indexes, foreign keys, inheritance, partitions, user-defined types).
# A table ferry refuses is excluded (--exclude) and the export or import is retried; it is
# reported as refused, with ferry's message. Databases are named fid_<pid>_<schema>_{s,t}
# and dropped at the end (FERRY_FIDELITY_KEEP=1 keeps them).
#
# Servers: FERRY_FIDELITY_PG (default postgres://postgres@127.0.0.1:5432) and
# FERRY_FIDELITY_MYSQL_HOST/PORT/USER (default 127.0.0.1, 3306, root, no password).
set -uo pipefail

ALL="pg_northwind pg_pagila pg_pagila010 pg_world pg_chinook pg_adventureworks pg_omnibus my_sakila my_employees my_world my_chinook"
FERRY=${1:?usage: run.sh FERRY_BINARY [DATA_DIR] [SCHEMA...]}
shift
if [ $# -gt 0 ] && ! [[ " $ALL " == *" $1 "* ]]; then DATA=$1; shift; else DATA=${FERRY_FIDELITY_DATA:-}; fi
[ -n "$DATA" ] || { echo "no data dir: pass it or set FERRY_FIDELITY_DATA" >&2; exit 2; }
FERRY=$(readlink -f "$FERRY"); DATA=$(readlink -f "$DATA")
HERE=$(cd "$(dirname "$0")" && pwd)
[ -x "$FERRY" ] || { echo "not executable: $FERRY" >&2; exit 2; }

SCHEMAS=${*:-$ALL}

PG=${FERRY_FIDELITY_PG:-postgres://postgres@127.0.0.1:5432}
MYH=${FERRY_FIDELITY_MYSQL_HOST:-127.0.0.1}; MYP=${FERRY_FIDELITY_MYSQL_PORT:-3306}; MYU=${FERRY_FIDELITY_MYSQL_USER:-root}
MY_URL=mysql://$MYU@$MYH:$MYP
pgq() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$PG/postgres" "$@"; }
myq() { mariadb -h"$MYH" -P"$MYP" -u"$MYU" "$@"; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ferry-fidelity.XXXXXX")
RUN=fid_$$
KEY=$WORK/key
"$FERRY" keygen "$KEY" >/dev/null 2>&1 || { echo "ferry keygen failed" >&2; exit 1; }
SUMMARY=$WORK/summary.tsv; : > "$SUMMARY"
CREATED=()

cleanup() {
  [ "${FERRY_FIDELITY_KEEP:-0}" = 1 ] && { echo "kept databases: ${CREATED[*]:-} and $WORK"; return; }
  for db in "${CREATED[@]:-}"; do
    [ -n "$db" ] || continue
    case $db in
      pg:*) pgq -c "DROP DATABASE IF EXISTS \"${db#pg:}\" WITH (FORCE)" >/dev/null 2>&1 ;;
      my:*) myq -e "DROP DATABASE IF EXISTS \`${db#my:}\`" >/dev/null 2>&1 ;;
    esac
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

create_db() { # engine name
  CREATED+=("$1:$2")
  if [ "$1" = pg ]; then pgq -c "DROP DATABASE IF EXISTS \"$2\" WITH (FORCE)" -c "CREATE DATABASE \"$2\" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'"
  else myq -e "DROP DATABASE IF EXISTS \`$2\`; CREATE DATABASE \`$2\` CHARACTER SET utf8mb4"; fi
}
url() { if [ "$1" = pg ]; then echo "$PG/$2"; else echo "$MY_URL/$2"; fi; }

# ---- loaders: psql / mariadb with errors recorded, not fatal (owners, extensions, versions)
psql_load() { # db file [dir]
  (cd "${3:-.}" && psql -X -q -v ON_ERROR_STOP=0 -d "$PG/$1" -f "$2") >>"$LOADLOG" 2>&1
}
strip_pg_db() { grep -v -E '^(DROP|CREATE) DATABASE|^\\c ' "$1"; }
strip_my_db() { grep -v -E '^(DROP|CREATE) (DATABASE|SCHEMA)|^/\*!40000 DROP DATABASE|^USE |^source ' "$1"; }
my_load() { myq --force "$1" >>"$LOADLOG" 2>&1; }

load_pg_northwind() { psql_load "$1" "$DATA/pg/northwind/northwind.sql"; }
load_pg_pagila() {
  psql_load "$1" "$DATA/pg/pagila/pagila-schema.sql"
  psql_load "$1" "$DATA/pg/pagila/pagila-data.sql"
}
load_pg_pagila010() {
  psql_load "$1" "$DATA/pg/pagila010/pagila-schema.sql"
  psql_load "$1" "$DATA/pg/pagila010/pagila-data.sql"
}
load_pg_world() { psql_load "$1" "$DATA/pg/world/world.sql"; }
load_pg_chinook() { strip_pg_db "$DATA/pg/chinook/Chinook_PostgreSql.sql" > "$WORK/chinook.sql"; psql_load "$1" "$WORK/chinook.sql"; }
load_pg_adventureworks() {
  # install.sql reads ./data/*.csv; the files over 4 MiB may be missing (tables stay empty)
  psql_load "$1" "$DATA/pg/adventureworks/install.sql" "$DATA/pg/adventureworks"
}
load_pg_omnibus() {
  # roles are cluster-wide: the lines creating and dropping them are removed (what is
  # granted to them then fails harmlessly); 00 (roles), 09 (a database and a foreign
  # server) and 99 (an event trigger) are not fetched
  local f
  # The chain of 256 tables whose column is the previous table's row type is cut to 3: ferry
  # refuses such a column one table per export run, and 3 show it as well as 256.
  for f in "$DATA"/pg/omnibus/*.sql; do
    grep -v -E '^\s*(CREATE|DROP) (USER|ROLE|GROUP)\b' "$f" | sed 's/FOR i IN 1\.\.256 LOOP/FOR i IN 1..3 LOOP/' > "$WORK/omnibus-$(basename "$f")"
    psql_load "$1" "$WORK/omnibus-$(basename "$f")"
  done
  psql_load "$1" "$HERE/omnibus-rows.sql"
}
load_my_sakila() {  # the actor_info view names the schema "sakila": unqualified here
  strip_my_db "$DATA/my/sakila/sakila-mv-schema.sql" | sed "s/\bsakila\.//g" | my_load "$1"
  strip_my_db "$DATA/my/sakila/sakila-mv-data.sql" | my_load "$1"
}
load_my_employees() {
  # the schema and departments as published; employees 10001..14999 (the first 4,999,
  # from load_employees.dump, or from its truncated copy) and their rows in the other
  # tables when those dumps are present (a full load takes far more than the time budget)
  local d=$DATA/my/employees emp
  strip_my_db "$d/employees.sql" | my_load "$1"
  my_load "$1" < "$d/load_departments.dump"
  emp=$d/load_employees.dump; [ -f "$emp" ] || emp=$d/load_employees.head.dump
  local f
  for f in "$emp" "$d/load_dept_emp.dump" "$d/load_dept_manager.dump" "$d/load_titles.dump" "$d/load_salaries1.dump"; do
    [ -f "$f" ] || continue
    python3 - "$f" <<'PY' | my_load "$1"
import re, sys
table = None
for line in open(sys.argv[1], encoding="utf-8"):
    m = re.match(r"INSERT INTO `(\w+)` VALUES ", line)
    if m:
        table = m.group(1); line = line[m.end():]
    m = re.match(r"\((\d+),.*\)[,;]\s*$", line)
    if table and m and int(m.group(1)) < 15000:
        print(f"INSERT INTO `{table}` VALUES {line.rstrip().rstrip(',;')};")
PY
  done
}
load_my_world() { strip_my_db "$DATA/my/world/world.sql" | my_load "$1"; }
load_my_chinook() { strip_my_db "$DATA/my/chinook/Chinook_MySql.sql" | my_load "$1"; }

need_data() {
  case $1 in
    pg_northwind) echo pg/northwind/northwind.sql ;;
    pg_pagila) echo pg/pagila/pagila-data.sql ;;
    pg_pagila010) echo pg/pagila010/pagila-data.sql ;;
    pg_world) echo pg/world/world.sql ;;
    pg_chinook) echo pg/chinook/Chinook_PostgreSql.sql ;;
    pg_adventureworks) echo pg/adventureworks/install.sql ;;
    pg_omnibus) echo pg/omnibus/04_create_composite_type.ddl.sql ;;
    my_sakila) echo my/sakila/sakila-mv-data.sql ;;
    my_employees) echo my/employees/employees.sql ;;
    my_world) echo my/world/world.sql ;;
    my_chinook) echo my/chinook/Chinook_MySql.sql ;;
    *) echo "" ;;
  esac
}

facts() { # engine db out [sql file: default the catalogue facts]
  if [ "$1" = pg ]; then
    psql -X -q -At -F $'\t' -v ON_ERROR_STOP=1 -d "$PG/$2" -f "${4:-$HERE/pg_facts.sql}" >> "$3"
  else
    myq -N -B -r "$2" < "${4:-$HERE/mysql_facts.sql}" >> "$3"
  fi
}

# Tables a ferry error message refuses: those written as "table NAME" (ferry's own
# wording), else every source table whose name appears in it as a whole word (qualified
# for PostgreSQL, else unqualified when unique), else the tables using a user-defined type
# the message names.
named_tables() { # facts_file message_file
  python3 - "$1" "$2" <<'PY'
import re, sys
tables = [l.split("\t")[1] for l in open(sys.argv[1], encoding="utf-8") if l.startswith("table\t")]
msg = open(sys.argv[2], encoding="utf-8", errors="replace").read()
plain = msg.replace('"', '').replace('`', '')
def named(t, pattern):
    return re.search(pattern.format(re.escape(t.replace('"', ''))), plain)
hits = [t for t in tables if named(t, r"(?i:table)\s+{}(?![\w.])")]
if not hits:
    hits = [t for t in tables if named(t, r"(?<![\w.]){}(?![\w])")]
if not hits and "." in "".join(tables):
    # a PostgreSQL message naming a table without its schema: when that name is unique
    bare = {}
    for t in tables:
        bare.setdefault(t.rsplit(".", 1)[-1].replace('"', ''), []).append(t)
    hits = [ts[0] for b, ts in bare.items() if len(ts) == 1 and re.search(r"(?<![\w.])" + re.escape(b) + r"(?![\w])", plain)]
if not hits:
    # a user-defined type the target could not create: the tables that use it
    uses, deps, types = {}, {}, set()
    for l in open(sys.argv[1], encoding="utf-8"):
        k, _, rest = l.rstrip("\n").partition("\t")
        o, _, v = rest.partition("\t")
        if k == "typeuse": uses.setdefault(o, set()).add(v)
        elif k == "typedep": deps.setdefault(o, set()).add(v)
        elif k == "type": types.add(o)
    bad = {ty for ty in types if named(ty, r"(?<![\w.]){}(?![\w])")}
    for t, used in uses.items():
        seen, todo = set(used), list(used)
        while todo:
            for d in deps.get(todo.pop(), ()):
                if d not in seen: seen.add(d); todo.append(d)
        if seen & bad: hits.append(t)
print("\n".join(hits))
PY
}

# run ferry export/import, excluding refused tables until it succeeds (at most 400 rounds:
# ferry names one refused table per run on export)
ferry_with_refusals() { # label facts refused_file cmd...
  local label=$1 ffacts=$2 refused=$3; shift 3
  local excl=() round out=$WORK/ferry.out t
  # export refusals are not in the bundle: import is only told its own
  [ -s "$refused" ] && while IFS=$'\t' read -r t why; do
    [ "${why%%:*}" = "$label" ] && excl+=(--exclude "$t"); done < "$refused"
  for round in $(seq 1 400); do
    [ "$label" = import ] && [ -n "${RESET_TARGET:-}" ] && $RESET_TARGET
    if "$@" "${excl[@]}" >"$out" 2>&1; then return 0; fi
    local named; named=$(named_tables "$ffacts" "$out" | grep -v -x -F -f <(cut -f1 "$refused"; echo '<none>') || true)
    if [ -z "$named" ]; then
      echo "ferry $label failed, naming no table left to exclude:" >&2
      sed 's/^/    /' "$out" | head -20 >&2
      return 1
    fi
    local why; why=$(grep -v '^\s*$' "$out" | head -3 | tr '\n' ' ' | cut -c1-400)
    for t in $named; do
      # the line of the message that names it, when there is one
      local line; line=$(grep -F -- "${t##*.}" "$out" | head -1 | sed -e 's/^\s*//' -e 's/^ferry [a-z]*: error: //' | cut -c1-400)
      printf '%s\t%s: %s\n' "$t" "$label" "${line:-$why}" >> "$refused"
      excl+=(--exclude "$t")
    done
  done
  return 1
}

echo "ferry fidelity suite: binary $FERRY ($("$FERRY" --version 2>/dev/null || echo '?'))"
echo "data $DATA, started $(date -u '+%Y-%m-%d %H:%M UTC')"
for s in $SCHEMAS; do
  req=$(need_data "$s")
  [ -n "$req" ] || { echo "unknown schema $s" >&2; continue; }
  if [ ! -f "$DATA/$req" ]; then echo "== $s: skipped, $DATA/$req missing (run fidelity/fetch-data.sh)"; continue; fi
  eng=${s%%_*}; started=$(date +%s)
  src=${RUN}_${s}_s; tgt=${RUN}_${s}_t
  LOADLOG=$WORK/$s.load.log; : > "$LOADLOG"
  create_db "$eng" "$src" >/dev/null || { echo "== $s: cannot create database" ; continue; }
  "load_$s" "$src"
  loaderr=$(grep -c -E '^(psql:.*)?ERROR|^ERROR [0-9]+' "$LOADLOG" || true)
  : > "$WORK/$s.src.facts"; : > "$WORK/$s.tgt.facts"
  facts "$eng" "$src" "$WORK/$s.src.facts" || { echo "== $s: reading source facts failed"; continue; }
  refused=$WORK/$s.refused; : > "$refused"
  bundle=$WORK/$s.bundle
  export_cmd() { rm -rf "$bundle"; "$FERRY" export "$(url "$eng" "$src")" "$bundle" --key-file "$KEY" --quiet "$@"; }
  reset_target() { create_db "$eng" "$tgt" >/dev/null; }
  create_db "$eng" "$tgt" >/dev/null
  status=ok
  if ! ferry_with_refusals export "$WORK/$s.src.facts" "$refused" export_cmd; then
    status="export failed"
  else
    RESET_TARGET=reset_target
    if ! ferry_with_refusals import "$WORK/$s.src.facts" "$refused" \
         "$FERRY" import "$bundle" "$(url "$eng" "$tgt")" --key-file "$KEY" --quiet; then
      status="import failed"
    fi
    RESET_TARGET=
  fi
  facts "$eng" "$tgt" "$WORK/$s.tgt.facts" || echo "reading target facts failed" >&2
  # rows: both sides digest the columns they have in common (a column missing on one side is
  # reported by the column checks); then per-column digests of the tables that differ
  for mode in rowsql colsql; do
    python3 "$HERE/compare.py" $mode "$eng" "$WORK/$s.src.facts" "$WORK/$s.tgt.facts" > "$WORK/$s.$mode.sql"
    facts "$eng" "$src" "$WORK/$s.src.facts" "$WORK/$s.$mode.sql" || echo "source $mode failed" >&2
    facts "$eng" "$tgt" "$WORK/$s.tgt.facts" "$WORK/$s.$mode.sql" || echo "target $mode failed" >&2
  done
  echo
  echo "## $s: load errors $loaderr (source as loaded is the reference), ferry: $status, $(( $(date +%s) - started )) s"
  python3 "$HERE/compare.py" "$s" "$WORK/$s.src.facts" "$WORK/$s.tgt.facts" "$refused" | tee "$WORK/$s.report" | grep -v '^SUMMARY'
  grep '^SUMMARY' "$WORK/$s.report" >> "$SUMMARY"
  if [ -n "${FERRY_FIDELITY_OUT:-}" ]; then
    mkdir -p "$FERRY_FIDELITY_OUT"
    cp "$WORK/$s.report" "$WORK/$s.src.facts" "$WORK/$s.tgt.facts" "$LOADLOG" "$FERRY_FIDELITY_OUT/" 2>/dev/null
  fi
  if [ "${FERRY_FIDELITY_KEEP:-0}" != 1 ]; then
    if [ "$eng" = pg ]; then pgq -c "DROP DATABASE IF EXISTS \"$src\" WITH (FORCE)" -c "DROP DATABASE IF EXISTS \"$tgt\" WITH (FORCE)" >/dev/null 2>&1
    else myq -e "DROP DATABASE IF EXISTS \`$src\`; DROP DATABASE IF EXISTS \`$tgt\`" >/dev/null 2>&1; fi
    rm -rf "$bundle"
  fi
done

echo
echo "== summary ($(date -u '+%Y-%m-%d %H:%M UTC'))"
python3 - "$SUMMARY" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
ti = tt = 0
checks = {}
print(f"{'schema':<18} {'identical':>10}  refused  failing checks (tables)")
for _, name, ident, total, counts, refused, nc in rows:
    ti += int(ident); tt += int(total)
    bad = []
    for kv in counts.split(","):
        k, v = kv.split("="); checks[k] = checks.get(k, 0) + int(v)
        if int(v): bad.append(f"{k}={v}")
    print(f"{name:<18} {ident + '/' + total:>10}  {refused:>7}  {' '.join(bad) or '-'}")
print(f"{'TOTAL':<18} {str(ti) + '/' + str(tt):>10}           " + " ".join(f"{k}={v}" for k, v in checks.items() if v))
PY
