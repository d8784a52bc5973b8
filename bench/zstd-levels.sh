#!/usr/bin/env bash
# Bench for #18 (zstd level × encode threads) on a 1M-row events table: create it with
# bench/events-pg.sql with 5000000 replaced by 1000000, in database ferry_bench_parquet.
# Export the 1M-row events table at zstd levels 1-3, with the encode pool (default threads)
# and without (FERRY_ENCODE_THREADS=1), alternating, ROUNDS rounds. Prints CSV lines:
# round,level,threads,wall_s,user_s,sys_s,maxrss_kb,bundle_bytes
set -euo pipefail
FERRY="${FERRY:?set FERRY to a release ferry binary}"
SRC="postgres://postgres@127.0.0.1:5432/ferry_bench_parquet"
ROUNDS="${ROUNDS:-3}"
W=/tmp/pq-bench/work
rm -rf "$W"; mkdir -p "$W"
"$FERRY" keygen "$W/k.key" >/dev/null
echo "round,level,threads,wall_s,user_s,sys_s,maxrss_kb,bundle_bytes"
for r in $(seq 1 "$ROUNDS"); do
  for level in 1 2 3; do
    for threads in pool 1; do
      b="$W/b-$r-$level-$threads"
      if [ "$threads" = 1 ]; then export FERRY_ENCODE_THREADS=1; else unset FERRY_ENCODE_THREADS; fi
      /usr/bin/time -v -o "$W/time" "$FERRY" --quiet export "$SRC" "$b" --key-file "$W/k.key" --zstd-level "$level" >/dev/null
      wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$W/time" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
      user=$(sed -n 's/.*User time (seconds): //p' "$W/time")
      sys=$(sed -n 's/.*System time (seconds): //p' "$W/time")
      rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$W/time")
      bytes=$(du -sb "$b" | cut -f1)
      echo "$r,$level,$threads,$wall,$user,$sys,$rss,$bytes"
      rm -rf "$b"
    done
  done
done
