#!/usr/bin/env bash
# How much a link of a chain carries: the bench's `events` table (ROWS rows, default 1M) as a
# chain start, then 1% of its rows changed (updated_at advanced), then a link without and
# with --deletes. Prints the three bundle sizes and the links' share of the full bundle.
# Usage: bash bench/chain_size.sh   (PGURL, ROWS, CHANGED_PCT, CARGO_TARGET_DIR as in pg.sh)
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432/test}
ROWS=${ROWS:-1000000}
CHANGED_PCT=${CHANGED_PCT:-1}
DB=ferry_bench_chain
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export PGOPTIONS="-c client_min_messages=warning"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"; psql -X -q -d "$PGURL" -c "DROP DATABASE IF EXISTS $DB" >/dev/null' EXIT

# Sizes do not depend on the build: FERRY_BIN may name any ferry binary (a debug build too).
FERRY=${FERRY_BIN:-}
if [ -z "$FERRY" ]; then
  (cd "$ROOT" && CARGO_TARGET_DIR=$CARGO_TARGET_DIR cargo build --release -q)
  FERRY=$CARGO_TARGET_DIR/release/ferry
fi
SRC=${PGURL%/*}/$DB
psql -X -q -d "$PGURL" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
sed "s/5000000/$ROWS/g;" "$BENCH_DIR/events-pg.sql" |
  psql -X -q -v ON_ERROR_STOP=1 -d "$SRC" >/dev/null
# A logical clock: every row written at its own tick, as a real updated_at would be.
psql -X -q -d "$SRC" -c "ALTER TABLE events ADD COLUMN updated_at bigint" -c "UPDATE events SET updated_at = id" \
  -c "ALTER TABLE events ALTER COLUMN updated_at SET NOT NULL" -c "VACUUM ANALYZE events"
"$FERRY" keygen "$WORK/k.key" >/dev/null
"$FERRY" --quiet export "$SRC" "$WORK/full" --key-file "$WORK/k.key" --cursor events=updated_at
psql -X -q -d "$SRC" -c "UPDATE events SET updated_at = $ROWS + id, status = 'changed' WHERE id % (100 / $CHANGED_PCT) = 0"
"$FERRY" --quiet export "$SRC" "$WORK/link" --key-file "$WORK/k.key" --since "$WORK/full"
"$FERRY" --quiet export "$SRC" "$WORK/link_deletes" --key-file "$WORK/k.key" --since "$WORK/full" --deletes
full=$(du -sb "$WORK/full" | cut -f1)
link=$(du -sb "$WORK/link" | cut -f1)
dele=$(du -sb "$WORK/link_deletes" | cut -f1)
python3 - "$ROWS" "$CHANGED_PCT" "$full" "$link" "$dele" <<'PY'
import sys
rows, pct, full, link, dele = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
print(f"events: {rows} rows, {pct}% changed")
print(f"full bundle            {full:>12,} bytes")
print(f"link                   {link:>12,} bytes  {100*link/full:6.2f}% of full")
print(f"link with --deletes    {dele:>12,} bytes  {100*dele/full:6.2f}% of full")
PY
