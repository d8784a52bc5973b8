#!/usr/bin/env python3
"""The row-by-row baseline: the copy loop of a hand-written migration script.

Reads SOURCE_URL's table through SQLAlchemy (a server-side cursor, so memory stays flat),
creates the same table in TARGET_URL from the reflected schema, and inserts the rows one
statement per row, committing every --commit-every rows: the loop migration scripts are
usually written as (and what ORMs do without bulk helpers). It is the baseline of the
"whole move" row in bench/mysql.sh, not a peer to beat by a few percent.

    python3 bench/rowcopy.py mysql+pymysql://root@127.0.0.1:3306/src \
        mysql+pymysql://root@127.0.0.1:3306/dst events

A password comes from MYSQL_PWD (as for the mariadb client), never from the command line.
Needs SQLAlchemy 2 and PyMySQL (bench/mysql.sh installs both into its virtualenv).
Prints one line: rows copied and seconds.
"""

import argparse
import os
import sys
import time

import sqlalchemy as sa


def with_password(url: str) -> sa.URL:
    """The URL with MYSQL_PWD as its password when it names none."""
    u = sa.make_url(url)
    pw = os.environ.get("MYSQL_PWD")
    return u.set(password=pw) if pw and u.password is None else u


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source_url")
    ap.add_argument("target_url")
    ap.add_argument("table")
    ap.add_argument("--commit-every", type=int, default=1000)
    ap.add_argument("--limit", type=int, default=None, help="copy only the first N rows (by key)")
    args = ap.parse_args()

    src = sa.create_engine(with_password(args.source_url))
    dst = sa.create_engine(with_password(args.target_url))
    meta = sa.MetaData()
    table = sa.Table(args.table, meta, autoload_with=src)
    meta.create_all(dst)

    started = time.monotonic()
    copied = 0
    query = sa.select(table)
    pk = list(table.primary_key.columns)
    if pk:
        query = query.order_by(*pk)
    if args.limit is not None:
        query = query.limit(args.limit)
    insert = table.insert()
    with src.connect() as sconn, dst.connect() as dconn:
        result = sconn.execution_options(stream_results=True, yield_per=1000).execute(query)
        for row in result:
            dconn.execute(insert, dict(row._mapping))
            copied += 1
            if copied % args.commit_every == 0:
                dconn.commit()
        dconn.commit()
    secs = time.monotonic() - started
    print(f"rowcopy: {copied} rows in {secs:.2f} s ({copied / secs if secs else 0:.0f} rows/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
