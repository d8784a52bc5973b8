"""DuckDB peer for bench/pg.sh: one PostgreSQL table -> one zstd Parquet file.

usage: duckdb_export.py check EXTENSION CONNINFO
       duckdb_export.py export EXTENSION CONNINFO SCHEMA.TABLE OUT.parquet

The postgres scanner is loaded from a local file (the duckdb-ext-postgres wheel), never
installed from the network: autoinstall and autoload are switched off before LOAD.
"""

import sys

import duckdb


def connect(extension: str) -> "duckdb.DuckDBPyConnection":
    con = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    con.execute(f"LOAD '{sq(extension)}'")
    return con


def sq(s: str) -> str:
    return s.replace("'", "''")


def attach(con, conninfo: str) -> None:
    con.execute(f"ATTACH '{sq(conninfo)}' AS pg (TYPE postgres, READ_ONLY)")


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[0] == "check":
        con = connect(argv[1])
        attach(con, argv[2])
        one = con.execute("SELECT * FROM postgres_query('pg', 'SELECT 1')").fetchone()
        print(f"duckdb {duckdb.__version__}, postgres scanner loaded, query -> {one[0]}")
        return 0
    if len(argv) == 5 and argv[0] == "export":
        _, ext, conninfo, table, out = argv
        schema, _, name = table.rpartition(".")
        con = connect(ext)
        attach(con, conninfo)
        con.execute(
            f'COPY (SELECT * FROM pg."{schema or "public"}"."{name}") '
            f"TO '{sq(out)}' (FORMAT parquet, COMPRESSION zstd)"
        )
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
