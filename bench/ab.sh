#!/usr/bin/env bash
# A/B of two ferry binaries on the same work, alternating runs, medians of wall and CPU time.
# For a change's own effect (bench/pg.sh and bench/mysql.sh compare ferry with the peers).
#
#   bash bench/ab.sh pg-export    OLD_FERRY NEW_FERRY [RUNS]   # the pg.sh table (ferry_bench.events)
#   bash bench/ab.sh mysql-export OLD_FERRY NEW_FERRY [RUNS]   # the mysql.sh table
#   bash bench/ab.sh mysql-import OLD_FERRY NEW_FERRY [RUNS]   # a bundle of it, into a fresh database
#
# The source tables are those bench/pg.sh and bench/mysql.sh load (BENCH_DB, default
# ferry_bench); PGURL and MYURL as there. Needs GNU time (/usr/bin/time).
set -euo pipefail

MODE=${1:?usage: bench/ab.sh pg-export|mysql-export|mysql-import OLD_FERRY NEW_FERRY [RUNS]}
A=${2:?old ferry binary}
B=${3:?new ferry binary}
RUNS=${4:-5}
BENCH_DB=${BENCH_DB:-ferry_bench}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432/$BENCH_DB}
MYURL=${MYURL:-mysql://root@127.0.0.1:3306/$BENCH_DB}
MYTARGET_DB=${BENCH_DB}_ab_import
MYTARGET=${MYURL%/*}/$MYTARGET_DB

[[ -x /usr/bin/time ]] || { echo "GNU time (/usr/bin/time) is needed: apt-get install time" >&2; exit 1; }
for bin in "$A" "$B"; do
  [[ -x $bin ]] || { echo "not an executable: $bin" >&2; exit 1; }
done

WORK=$(mktemp -d)
trap 'rm -rf -- "$WORK"; [[ $MODE == mysql-import ]] && mariadb -e "DROP DATABASE IF EXISTS \`$MYTARGET_DB\`" || true' EXIT
"$A" keygen "$WORK/key" --quiet >/dev/null

case $MODE in
  pg-export) SRC=$PGURL ;;
  mysql-export | mysql-import) SRC=$MYURL ;;
  *) echo "unknown mode: $MODE" >&2; exit 2 ;;
esac
if [[ $MODE == mysql-import ]]; then
  # One bundle, made by the old binary, imported by both.
  "$A" export "$SRC" "$WORK/bundle" --table events --key-file "$WORK/key" --quiet >/dev/null
fi

run() { # run LABEL BINARY: one timed run, appended to $WORK/times
  local label=$1 bin=$2
  case $MODE in
    *-export)
      rm -rf -- "$WORK/out"
      /usr/bin/time -f "$label %e %U %S %M" -a -o "$WORK/times" \
        "$bin" export "$SRC" "$WORK/out" --table events --key-file "$WORK/key" --quiet >/dev/null
      ;;
    mysql-import)
      mariadb -e "DROP DATABASE IF EXISTS \`$MYTARGET_DB\`; CREATE DATABASE \`$MYTARGET_DB\`"
      /usr/bin/time -f "$label %e %U %S %M" -a -o "$WORK/times" \
        "$bin" import "$WORK/bundle" "$MYTARGET" --key-file "$WORK/key" --quiet >/dev/null
      ;;
  esac
  tail -n 1 "$WORK/times" >&2
}

for ((i = 1; i <= RUNS; i++)); do
  # Alternate which goes first, so neither always runs on a warmer cache.
  if ((i % 2)); then run old "$A"; run new "$B"; else run new "$B"; run old "$A"; fi
done

python3 - "$WORK/times" "$MODE" "$RUNS" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    label, wall, user, sys_, rss = line.split()
    runs.setdefault(label, []).append((float(wall), float(user) + float(sys_), int(rss)))
print(f"{sys.argv[2]}, {sys.argv[3]} alternating runs each (medians; CPU = user + system)")
for label in ("old", "new"):
    r = runs[label]
    print(f"  {label}: wall {statistics.median(x[0] for x in r):.2f} s "
          f"({min(x[0] for x in r):.2f}-{max(x[0] for x in r):.2f}), "
          f"CPU {statistics.median(x[1] for x in r):.2f} s, peak RSS {max(x[2] for x in r) // 1024} MiB")
w = statistics.median(x[0] for x in runs["new"]) / statistics.median(x[0] for x in runs["old"])
c = statistics.median(x[1] for x in runs["new"]) / statistics.median(x[1] for x in runs["old"])
print(f"  new / old: wall {w:.3f}, CPU {c:.3f}")
EOF
