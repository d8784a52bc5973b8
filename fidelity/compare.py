#!/usr/bin/env python3
"""Compare the facts of a source and a target database (pg_facts.sql / mysql_facts.sql).

usage: compare.py NAME SOURCE_FACTS TARGET_FACTS [REFUSED_FILE]
       compare.py rowsql pg|my SOURCE_FACTS TARGET_FACTS   (SQL for the row digests)
       compare.py colsql pg|my SOURCE_FACTS TARGET_FACTS   (per-column digests of the
                                                            tables whose rows differ)

REFUSED_FILE holds "table<TAB>reason" lines for tables ferry refused (they were excluded
from the export or the import). Prints one line per check, the differences under it, the
by-design "not carried" lists, and a machine-readable SUMMARY line for run.sh.
"""
import difflib
import re
import sys
from collections import defaultdict

TABLE_CHECKS = ["table", "rows", "columns", "type", "notnull", "default", "order",
                "pk", "unique", "index", "fk", "inherit", "partition"]
SEP = "\x1f"


def load(path):
    facts = defaultdict(lambda: defaultdict(list))
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            parts = line.split("\t", 2)
            if len(parts) < 3:
                parts += [""] * (3 - len(parts))
            kind, obj, val = parts
            facts[kind][obj].append(val)
    for kind in facts:
        for obj in facts[kind]:
            facts[kind][obj].sort()
    return facts


def parse_col(val):
    out = {}
    for field in val.split(SEP):
        k, _, v = field.partition("=")
        out[k] = v
    return out


def table_of_col(qcol, tables):
    # "schema.table.column" (PG) or "table.column" (MySQL): the longest table prefix
    best = None
    for t in tables:
        if qcol.startswith(t + ".") and (best is None or len(t) > len(best)):
            best = t
    return best


NONCONST = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\s*\(|^(current_date|current_timestamp|localtimestamp|"
                      r"current_time|localtime|current_user|session_user|user)\b|"
                      r"'(now|today|tomorrow|yesterday)'", re.I)


def is_constant_default(expr):
    if expr in ("", "NULL"):
        return True
    if re.search(r"'(now|today|tomorrow|yesterday)'", expr, re.I):
        return False
    stripped = re.sub(r"'(?:[^']|'')*'", "''", expr)
    return not NONCONST.search(stripped)


PG_HEADER = """SET search_path = '';
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SET IntervalStyle = 'postgres';
SET extra_float_digits = 3;
SET bytea_output = 'hex';
"""
MY_BINARY = ("binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "bit", "geometry",
             "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
             "geometrycollection")


def common_columns(src, tgt):
    """table -> sorted column names present on both sides (and their source facts)"""
    tables = sorted(set(src["table"]) & set(tgt["table"]))
    out = {}
    for t in tables:
        cols = {}
        for qc, vals in src["col"].items():
            if table_of_col(qc, tables) == t:
                cols[qc[len(t) + 1:]] = parse_col(vals[0])
        tcols = {qc[len(t) + 1:] for qc in tgt["col"] if table_of_col(qc, tables) == t}
        out[t] = {c: v for c, v in sorted(cols.items()) if c in tcols}
    return out


def my_ident(name):
    return "`" + name.replace("`", "``") + "`"


def my_value(col, facts):
    base = facts["type"].split("(")[0].split(" ")[0].lower()
    if base in MY_BINARY:
        return f"HEX({my_ident(col)})"
    return f"CONVERT({my_ident(col)} USING utf8mb4)"


def sql_digest(engine, label, obj, table, exprs):
    """one statement printing LABEL, OBJ, "count digest" over the given value expressions"""
    if engine == "pg":
        row = "ROW(" + ", ".join(exprs) + ")::text" if exprs else "'()'"
        return (f"SELECT {sql_lit(label)}, {sql_lit(obj)}, count(*) || ' ' || coalesce(md5(string_agg(x, E'\\n' "
                f"ORDER BY x COLLATE \"C\")), '-') FROM (SELECT {row} AS x FROM ONLY {table} t) s;")
    parts = ", ".join(f"IFNULL({e}, '\\\\N')" for e in exprs) or "''"
    return (f"SELECT {sql_lit(label)}, {sql_lit(obj)}, CONCAT(COUNT(*), ' ', "
            "IFNULL(SUM(CAST(CONV(SUBSTR(m, 1, 15), 16, 10) AS UNSIGNED)), 0), '.', "
            "IFNULL(SUM(CAST(CONV(SUBSTR(m, 16, 15), 16, 10) AS UNSIGNED)), 0)) "
            f"FROM (SELECT MD5(CONCAT_WS(0x1f, {parts})) AS m FROM {my_ident(table)}) s;")


def sql_lit(v):
    return "'" + v.replace("'", "''") + "'"


def gen_sql(mode, engine, src_path, tgt_path):
    src, tgt = load(src_path), load(tgt_path)
    cols = common_columns(src, tgt)
    if engine == "pg":
        print(PG_HEADER)
    else:
        print("SET SESSION time_zone = '+00:00';")
    for t, cs in cols.items():
        if engine == "pg" and src["table"][t] != ["r"]:
            continue          # partitioned parents hold no rows of their own; foreign tables
        if mode == "rowsql":
            exprs = [f"t.{c}::text" if engine == "pg" else my_value(c, f) for c, f in cs.items()]
            print(sql_digest(engine, "rows", t, t, exprs))
        elif src["rows"].get(t) != tgt["rows"].get(t):
            for c, f in cs.items():
                e = f"t.{c}::text" if engine == "pg" else my_value(c, f)
                print(sql_digest(engine, "colrows", f"{t}.{c}", t, [e]))


def main():
    if sys.argv[1] in ("rowsql", "colsql"):
        return gen_sql(*sys.argv[1:5])
    name, src_path, tgt_path = sys.argv[1:4]
    refused = {}
    if len(sys.argv) > 4:
        try:
            with open(sys.argv[4], encoding="utf-8") as f:
                for line in f:
                    t, _, why = line.rstrip("\n").partition("\t")
                    if t:
                        refused[t] = why
        except FileNotFoundError:
            pass
    src, tgt = load(src_path), load(tgt_path)
    tables = sorted(src["table"].keys())
    tgt_tables = set(tgt["table"].keys())
    fails = defaultdict(list)          # check -> [(table, detail)]
    failed_tables = defaultdict(set)   # table -> {checks}
    nc = defaultdict(list)             # kind -> [detail]

    def fail(check, table, detail):
        fails[check].append((table, detail))
        failed_tables[table].add(check)

    def multiset_diff(check, table, kind_src, kind_tgt=None, label=""):
        a = list(src[kind_src].get(table, []))
        b = list(tgt[kind_tgt or kind_src].get(table, []))
        for v in list(a):
            if v in b:
                b.remove(v)
                a.remove(v)
        # pair what is left, most similar first ("FOREIGN KEY (x) REFERENCES t(y)" with and
        # without its ON DELETE action, an index with another method, …)
        pairs = sorted(((difflib.SequenceMatcher(None, v, w).ratio(), i, j)
                        for i, v in enumerate(a) for j, w in enumerate(b)), reverse=True)
        used_a, used_b = set(), set()
        for ratio, i, j in pairs:
            if ratio < 0.6 or i in used_a or j in used_b:
                continue
            used_a.add(i)
            used_b.add(j)
            fail(check, table, f"{label}source {a[i]!r}, target {b[j]!r}")
        for i, v in enumerate(a):
            if i not in used_a:
                fail(check, table, f"{label}source has {v!r}, target lacks it")
        b = [w for j, w in enumerate(b) if j not in used_b]
        for w in b:
            fail(check, table, f"{label}target has extra {w!r}")

    src_cols = defaultdict(dict)
    tgt_cols = defaultdict(dict)
    all_tables = set(tables) | tgt_tables
    for qc, vals in src["col"].items():
        t = table_of_col(qc, all_tables)
        src_cols[t][qc[len(t) + 1:]] = parse_col(vals[0])
    for qc, vals in tgt["col"].items():
        t = table_of_col(qc, all_tables)
        tgt_cols[t][qc[len(t) + 1:]] = parse_col(vals[0])

    for t in tables:
        if t not in tgt_tables:
            why = refused.get(t)
            fail("table", t, "table missing in target" + (" (refused by ferry, see below)" if why else ""))
            continue
        if src["table"][t] != tgt["table"][t]:
            fail("table", t, f"source {src['table'][t][0]}, target {tgt['table'][t][0]}")
        # rows
        if src["rows"].get(t) != tgt["rows"].get(t):
            s = (src["rows"].get(t) or ["(none)"])[0]
            g = (tgt["rows"].get(t) or ["(none)"])[0]
            sc, gc = s.split(" ")[0], g.split(" ")[0]
            diffcols = sorted(qc[len(t) + 1:] for qc, v in src["colrows"].items()
                              if table_of_col(qc, all_tables) == t and tgt["colrows"].get(qc) != v)
            fail("rows", t, f"source {sc} rows, target {gc} rows" + (", same count, different content" if sc == gc else "")
                 + (f"; values differ in column(s) {', '.join(diffcols)}" if diffcols and sc == gc else ""))
        # columns
        sc, tc = src_cols.get(t, {}), tgt_cols.get(t, {})
        dropped_generated = set()
        for c, a in sc.items():
            b = tc.get(c)
            if b is None:
                if a.get("generated"):
                    nc["generated"].append(f"{t}.{c} ({a['generated']}): column absent in target")
                    dropped_generated.add(c)
                else:
                    fail("columns", t, f"column {c} missing in target")
                continue
            if a["type"] != b["type"]:
                fail("type", t, f"{c}: source {a['type']!r}, target {b['type']!r}")
            if a["notnull"] != b["notnull"]:
                fail("notnull", t, f"{c}: source NOT NULL={a['notnull']}, target NOT NULL={b['notnull']}")
            if a.get("generated") and a["generated"] != b.get("generated"):
                nc["generated"].append(f"{t}.{c} ({a['generated']}): target column is " + (b.get("generated") or "a plain column"))
            elif a["default"] != b["default"]:
                if b["default"] in ("", "NULL") and not is_constant_default(a["default"]):
                    nc["default"].append(f"{t}.{c} DEFAULT {a['default']}")
                else:
                    fail("default", t, f"{c}: source DEFAULT {a['default'] or '(none)'}, target DEFAULT {b['default'] or '(none)'}")
            if a.get("identity") and a["identity"] != b.get("identity"):
                nc["identity"].append(f"{t}.{c} ({a['identity']})")
        for c in tc:
            if c not in sc:
                fail("columns", t, f"extra column {c} in target")
        so = [c for c in (src["colorder"].get(t) or [""])[0].split(",") if c and c in tc]
        to = [c for c in (tgt["colorder"].get(t) or [""])[0].split(",") if c and c in sc]
        if so != to:
            fail("order", t, f"source ({', '.join(so)}), target ({', '.join(to)})")
        multiset_diff("pk", t, "con_p")
        multiset_diff("unique", t, "con_u")
        multiset_diff("unique", t, "con_x", label="exclusion: ")
        multiset_diff("index", t, "idx")
        for v in src["idx_expr"].get(t, []):
            if v not in tgt["idx_expr"].get(t, []):
                nc["expression/partial/prefix/fulltext index"].append(f"{t}: {v}")
        for v in tgt["idx_expr"].get(t, []):
            if v not in src["idx_expr"].get(t, []):
                fail("index", t, f"target has extra {v!r}")
        multiset_diff("fk", t, "con_f")
        multiset_diff("inherit", t, "inherits")
        multiset_diff("partition", t, "partkey", label="partition key: ")
        for v in src["con_c"].get(t, []):
            if v not in tgt["con_c"].get(t, []):
                nc["check"].append(f"{t}: {v}")
    # partition membership is keyed by the child
    for child, vals in src["partof"].items():
        if child in src["table"] and child not in tgt_tables:
            continue
        if tgt["partof"].get(child) != vals:
            t = child.split("#")[0] if "#" in child else child
            fail("partition", t, f"{child}: source PARTITION OF {vals[0]}, target "
                 + (f"PARTITION OF {tgt['partof'][child][0]}" if child in tgt["partof"] else "not a partition"))
    for child, vals in tgt["partof"].items():
        if child not in src["partof"]:
            t = child.split("#")[0] if "#" in child else child
            fail("partition", t, f"{child}: target has extra PARTITION OF {vals[0]}")

    # user-defined types: used by a table column (closure over domains, composites, ranges)
    # (tables the target has: a refused table's types are reported with the refusal)
    used = set()
    for t in tables:
        if t in tgt_tables:
            used.update(src["typeuse"].get(t, []))
    frontier = list(used)
    while frontier:
        ty = frontier.pop()
        for dep in src["typedep"].get(ty, []):
            if dep not in used:
                used.add(dep)
                frontier.append(dep)
    type_fail, type_total = [], 0
    for ty, vals in sorted(src["type"].items()):
        if ty not in used:
            if tgt["type"].get(ty) != vals:
                nc["type no carried column uses"].append(f"{ty}: {vals[0]}")
            continue
        type_total += 1
        if tgt["type"].get(ty) != vals:
            type_fail.append(f"{ty}: source {vals[0]!r}, target " + (repr(tgt['type'][ty][0]) if ty in tgt["type"] else "missing"))

    # not carried by design
    for kind in sorted(k for k in src if k.startswith("nc_")):
        for obj, vals in sorted(src[kind].items()):
            for v in vals:
                if v not in tgt[kind].get(obj, []):
                    nc[kind[3:]].append(f"{obj} {v}".rstrip())

    # report
    total = len(tables)
    identical = sum(1 for t in tables if not failed_tables.get(t))
    print(f"== {name}: tables identical {identical}/{total}")
    limit = int(__import__("os").environ.get("FERRY_FIDELITY_MAX_LINES", "60"))
    for check in TABLE_CHECKS:
        n_tables = len({t for t, _ in fails.get(check, [])})
        status = "ok" if n_tables == 0 else f"FAIL in {n_tables} table(s)"
        print(f"{name}\t{check:<10}\t{status}")
        lines = [f"{t}: {d}" for t, d in fails.get(check, []) if not (check == "table" and t in refused)]
        n_ref = sum(1 for t, _ in fails.get(check, []) if check == "table" and t in refused)
        if n_ref:
            lines.insert(0, f"{n_ref} table(s) refused by ferry: see 'refused' below")
        for d in lines[:limit]:
            print(f"    {d}")
        if len(lines) > limit:
            print(f"    … and {len(lines) - limit} more")
    print(f"{name}\t{'types':<10}\t" + ("ok" if not type_fail else f"FAIL {len(type_fail)}/{type_total}")
          + f" ({type_total} user-defined type(s) used by tables)")
    for d in type_fail:
        print(f"    {d}")
    if refused:
        # group the messages, with names masked, so that 256 alike refusals take one line
        groups = defaultdict(list)
        for t, why in sorted(refused.items()):
            key = why
            for name_ in sorted(set(re.findall(r"[\w$]+\.[\w$]+", why)), key=len, reverse=True):
                key = key.replace(name_, "…")
            groups[key].append((t, why))
        print(f"{name}\trefused   \t{len(refused)} table(s) excluded after ferry refused them:")
        for key, items in groups.items():
            if len(items) == 1:
                print(f"    {items[0][0]}: {items[0][1]}")
            else:
                names = ", ".join(t for t, _ in items[:6]) + (f", … ({len(items)} tables)" if len(items) > 6 else "")
                print(f"    {names}: {items[0][1]}")
    for kind in sorted(nc):
        items = nc[kind]
        print(f"{name}\tnot carried\t{kind}: {len(items)}")
        for d in items[:12]:
            print(f"    {d}")
        if len(items) > 12:
            print(f"    … and {len(items) - 12} more")
    counts = ",".join(f"{c}={len({t for t, _ in fails.get(c, [])})}" for c in TABLE_CHECKS)
    counts += f",types={len(type_fail)}"
    ncs = ",".join(f"{k}={len(v)}" for k, v in sorted(nc.items()))
    print(f"SUMMARY\t{name}\t{identical}\t{total}\t{counts}\t{len(refused)}\t{ncs}")


if __name__ == "__main__":
    main()
