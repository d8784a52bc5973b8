#!/usr/bin/env bash
# Sharded export with nothing but a shell: the coordinator in the background, N workers
# through `xargs -P` (on one machine here; give each machine its own range of shard numbers
# to spread them), a re-run of the shards that failed, then seal (README, "Sharded export").
#
#   SOURCE=postgres://user@db/app BUNDLE=s3://exports/app KEY=ferry.key SHARDS=4 PARALLEL=2 \
#     bash examples/k8s/xargs-shards.sh
set -euo pipefail
: "${SOURCE:?postgres:// URL of the source}" "${BUNDLE:?a new, empty bundle location}" "${KEY:?key file}"
SHARDS=${SHARDS:-4}
PARALLEL=${PARALLEL:-$SHARDS}
FERRY=${FERRY:-ferry}

# 1. The coordinator holds the snapshot until seal (or 24h); its log says when the plan is there.
log=$(mktemp)
"$FERRY" export "$SOURCE" "$BUNDLE" --shards "$SHARDS" --coordinate --key-file "$KEY" 2>"$log" &
coordinator=$!
trap 'kill "$coordinator" 2>/dev/null || true; rm -f "$log"' EXIT
until grep -q "shard plan for bundle" "$log"; do
  kill -0 "$coordinator" 2>/dev/null || { cat "$log" >&2; echo "the coordinator ended early" >&2; exit 1; }
  sleep 1
done

# 2. The workers, any order, PARALLEL at a time; a failed shard is run once more.
run_shard() { "$FERRY" --quiet export "$SOURCE" "$BUNDLE" --shard "$1" --key-file "$KEY" || \
              "$FERRY" --quiet export "$SOURCE" "$BUNDLE" --shard "$1" --key-file "$KEY"; }
export -f run_shard
export FERRY SOURCE BUNDLE KEY
seq 0 $((SHARDS - 1)) | xargs -P "$PARALLEL" -I{} bash -c 'run_shard {}'

# 3. Seal: the manifest is written last; the coordinator then releases the snapshot and exits.
"$FERRY" seal "$BUNDLE" --key-file "$KEY"
wait "$coordinator"
rm -f "$log"
trap - EXIT
