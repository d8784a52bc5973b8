"""Summary for bench/pg.sh: medians, peak RSS, sizes, ratios against the targets.

usage: report.py RAW.tsv META.json OUT.json

RAW.tsv has one line per timed command:
    round  phase  tool  seconds  peak_rss_kib  output_bytes(- if none)
META.json is a JSON object copied into the result (machine, versions, rows, rounds).
Prints the table on stdout and writes the same (plus every raw measurement) to OUT.json.
"""

import json
import statistics
import sys

# tool id -> label, in display order
TOOLS = {
    "export": [
        ("ferry_export", "ferry export (encrypted)"),
        ("duckdb", "DuckDB postgres scanner -> Parquet zstd"),
        ("pg_dump", "pg_dump -Fc"),
        ("copy_out_file", "psql \\copy TO file (binary)"),
        ("copy_out_null", "psql \\copy TO STDOUT (binary) > /dev/null"),
    ],
    "import": [
        ("ferry_import", "ferry import (fresh database)"),
        ("copy_in", "psql \\copy FROM file (binary), PK in place"),
        ("pg_restore", "pg_restore (fresh database)"),
    ],
}

# (name, kind, numerator, denominator, target): kind is time, size or rss
RATIOS = [
    ("ferry export / DuckDB", "time", "ferry_export", "duckdb", 1.10),
    ("ferry export / pg_dump -Fc", "time", "ferry_export", "pg_dump", 0.20),
    ("ferry export / psql \\copy TO /dev/null", "time", "ferry_export", "copy_out_null", None),
    ("bundle size / DuckDB Parquet size", "size", "ferry_export", "duckdb", 1.10),
    ("ferry import / psql \\copy FROM binary", "time", "ferry_import", "copy_in", 1.15),
    ("ferry import / pg_restore", "time", "ferry_import", "pg_restore", 0.70),
]
RSS_TARGET_MIB = 256


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            rnd, phase, tool, secs, rss, size = line.split("\t")
            rows.append(
                {
                    "round": int(rnd),
                    "phase": phase,
                    "tool": tool,
                    "seconds": float(secs),
                    "peak_rss_kib": int(rss),
                    "output_bytes": None if size == "-" else int(size),
                }
            )
    return rows


def summarize(rows):
    out = {}
    for tool in {r["tool"] for r in rows}:
        mine = [r for r in rows if r["tool"] == tool]
        sizes = [r["output_bytes"] for r in mine if r["output_bytes"] is not None]
        out[tool] = {
            "runs": len(mine),
            "median_seconds": statistics.median(r["seconds"] for r in mine),
            "min_seconds": min(r["seconds"] for r in mine),
            "max_seconds": max(r["seconds"] for r in mine),
            "peak_rss_mib": max(r["peak_rss_kib"] for r in mine) / 1024,
            "output_bytes": int(statistics.median(sizes)) if sizes else None,
        }
    return out


def per_round(rows, num, den):
    """num/den time ratio within each round both ran in: the noise a median hides."""
    by = {(r["round"], r["tool"]): r["seconds"] for r in rows}
    rounds = sorted({r["round"] for r in rows})
    return [by[k, num] / by[k, den] for k in rounds if (k, num) in by and by.get((k, den))]


def ratios(summary, rows):
    res = []
    for name, kind, num, den, target in RATIOS:
        value = None
        if num in summary and den in summary:
            if kind == "time":
                a, b = summary[num]["median_seconds"], summary[den]["median_seconds"]
            else:
                a, b = summary[num]["output_bytes"], summary[den]["output_bytes"]
            if a is not None and b:
                value = a / b
        rounds = per_round(rows, num, den) if kind == "time" else []
        res.append(
            {
                "name": name,
                "value": value,
                "per_round": rounds,
                "target": target,
                "met": verdict(value, target),
            }
        )
    ferry = [summary[t]["peak_rss_mib"] for t in ("ferry_export", "ferry_import") if t in summary]
    value = max(ferry) if ferry else None
    res.append(
        {
            "name": "ferry peak RSS (MiB, export and import)",
            "value": value,
            "target": RSS_TARGET_MIB,
            "met": verdict(value, RSS_TARGET_MIB),
        }
    )
    return res


def verdict(value, target):
    if value is None or target is None:
        return None
    return value <= target


def fmt(x, spec):
    return "-" if x is None else format(x, spec)


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    raw_path, meta_path, out_path = argv
    rows = load(raw_path)
    with open(meta_path) as f:
        meta = json.load(f)
    summary = summarize(rows)
    rat = ratios(summary, rows)

    print()
    print(
        f"PostgreSQL, {meta.get('rows', '?'):,} rows, {meta.get('rounds', '?')} alternating rounds"
        " (median seconds; peak RSS = max over rounds, client process only)"
    )
    header = f"{'':<7} {'tool':<46} {'median s':>9} {'min-max s':>13} {'peak RSS MiB':>13} {'output MB':>10}"
    print(header)
    print("-" * len(header))
    for phase, tools in TOOLS.items():
        for tool, label in tools:
            s = summary.get(tool)
            if s is None:
                failed = tool in meta.get("failed", [])
                print(f"{phase:<7} {label:<46} {'failed' if failed else 'skipped':>9}")
                continue
            spread = f"{s['min_seconds']:.2f}-{s['max_seconds']:.2f}"
            size = None if s["output_bytes"] is None else s["output_bytes"] / 1e6
            print(
                f"{phase:<7} {label:<46} {s['median_seconds']:>9.2f} {spread:>13}"
                f" {s['peak_rss_mib']:>13.1f} {fmt(size, '.1f'):>10}"
            )
    print()
    header = f"{'ratio (of medians)':<46} {'value':>8} {'per round':>13} {'target':>8}"
    print(header)
    print("-" * (len(header) + 8))
    for r in rat:
        is_rss = r["name"].startswith("ferry peak RSS")
        val = fmt(r["value"], ".1f" if is_rss else ".3f")
        pr = r.get("per_round") or []
        spread = f"{min(pr):.2f}-{max(pr):.2f}" if pr else ""
        tgt = "-" if r["target"] is None else ("<= %g" % r["target"])
        met = {True: "ok", False: "MISSED", None: ""}[r["met"]]
        print(f"{r['name']:<46} {val:>8} {spread:>13} {tgt:>8}  {met}")

    doc = {**meta, "summary": summary, "ratios": rat, "measurements": rows}
    with open(out_path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print()
    print(f"results: {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
