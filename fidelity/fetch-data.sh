#!/usr/bin/env bash
# Fetch the public sample schemas the fidelity suite loads, at pinned commits, into DATA_DIR
# (default $FERRY_FIDELITY_DATA). Nothing fetched here belongs in the ferry repository:
# keep DATA_DIR outside it.
#
#   fidelity/fetch-data.sh /work/fidelity-data
#
# Repositories are cloned from GitHub into DATA_DIR/.git-cache/<owner>+<name> (bare, full
# history: some files are taken from older commits). With FERRY_FIDELITY_MIRROR=DIR, an
# existing bare copy at DIR/<owner>+<name>/repo is used instead of cloning.
set -euo pipefail

DATA=${1:-${FERRY_FIDELITY_DATA:-}}
[ -n "$DATA" ] || { echo "usage: $0 DATA_DIR (or FERRY_FIDELITY_DATA)" >&2; exit 2; }
mkdir -p "$DATA"
DATA=$(cd "$DATA" && pwd)

repo_dir() { # owner/name -> git dir
  local slug=${1/\//+}
  if [ -n "${FERRY_FIDELITY_MIRROR:-}" ] && [ -d "$FERRY_FIDELITY_MIRROR/$slug/repo" ]; then
    echo "$FERRY_FIDELITY_MIRROR/$slug/repo"; return
  fi
  local d="$DATA/.git-cache/$slug"
  if [ ! -d "$d" ]; then
    git clone --quiet --bare "https://github.com/$1.git" "$d" >&2
  fi
  echo "$d"
}

# take OWNER/NAME COMMIT PATH DEST: git show COMMIT:PATH > DATA/DEST
take() {
  local gd; gd=$(repo_dir "$1")
  mkdir -p "$(dirname "$DATA/$4")"
  if ! git --git-dir="$gd" cat-file -e "$2:$3" 2>/dev/null; then
    echo "missing: $1 $2:$3" >&2; return 1
  fi
  git --git-dir="$gd" show "$2:$3" > "$DATA/$4"
  echo "$1@${2:0:12} $3 -> $4 ($(wc -c < "$DATA/$4") bytes)"
}

# --- PostgreSQL -------------------------------------------------------------------------
NW=cd0ef28d66369fbe177778e604e4be0f153c9e5c          # pthom/northwind_psql
take pthom/northwind_psql $NW northwind.sql pg/northwind/northwind.sql

PAGILA=5ba5a57aeb159f75f02aca2432d3c262186d13d3      # devrimgunduz/pagila, Dec 2024 (v3.x; newer commits need PG 18 + pgvector, and their data file is over 4 MiB)
take devrimgunduz/pagila $PAGILA pagila-schema.sql pg/pagila/pagila-schema.sql
take devrimgunduz/pagila $PAGILA pagila-data.sql pg/pagila/pagila-data.sql

SAMPLES=2bdc9539762092912655e1b82b7433d3151389dc     # morenoh149/postgresDBSamples
take morenoh149/postgresDBSamples $SAMPLES pagila-0.10.1/pagila-schema.sql pg/pagila010/pagila-schema.sql
take morenoh149/postgresDBSamples $SAMPLES pagila-0.10.1/pagila-data.sql pg/pagila010/pagila-data.sql
take morenoh149/postgresDBSamples $SAMPLES worldDB-1.0/world.sql pg/world/world.sql
take morenoh149/postgresDBSamples $SAMPLES adventureworks/install.sql pg/adventureworks/install.sql
gd=$(repo_dir morenoh149/postgresDBSamples)
# Person.csv, SalesOrderHeader/Detail, TransactionHistory(Archive), WorkOrder(Routing) are
# over 4 MiB and may be absent from a size-limited mirror: the loader then leaves them empty.
for f in $(git --git-dir="$gd" ls-tree --name-only $SAMPLES adventureworks/data/); do
  take morenoh149/postgresDBSamples $SAMPLES "$f" "pg/adventureworks/data/$(basename "$f")" || true
done

CHINOOK=7f67772503d71ba90f19283c38e93923addb43fa     # lerocha/chinook-database
take lerocha/chinook-database $CHINOOK ChinookDatabase/DataSources/Chinook_PostgreSql.sql pg/chinook/Chinook_PostgreSql.sql

VOYAGER=b41ffe81f332003611481acd27e6bc3963035291     # yugabyte/yb-voyager: the "omnibus" PG schema test
for f in 03_create_extension.ddl.sql 04_create_composite_type.ddl.sql 05_create_enum_type.ddl.sql \
         06_create_range_type.sql 07_create_base_type.ddl.sql 08_create_domain.ddl.sql \
         10_create_function.ddl.sql 11_create_ordinary_table.ddl.sql 12_create_cast.ddl.sql \
         14_create_access_method.ddl.sql 15_create_aggregate.ddl.sql 16_create_collation.ddl.sql \
         17_create_trigger.ddl.sql 18_create_index.ddl.sql 19_create_policy.ddl.sql; do
  take yugabyte/yb-voyager $VOYAGER migtests/tests/pg/omnibus/sql/$f pg/omnibus/$f
done

# --- MariaDB / MySQL --------------------------------------------------------------------
TESTDB=3c7fa05e04b4c339d91a43b7029a210212d48e6c      # datacharmer/test_db (employees + sakila)
take datacharmer/test_db $TESTDB sakila/sakila-mv-schema.sql my/sakila/sakila-mv-schema.sql
take datacharmer/test_db $TESTDB sakila/sakila-mv-data.sql my/sakila/sakila-mv-data.sql
take datacharmer/test_db $TESTDB employees.sql my/employees/employees.sql
take datacharmer/test_db $TESTDB load_departments.dump my/employees/load_departments.dump
take datacharmer/test_db $TESTDB load_dept_manager.dump my/employees/load_dept_manager.dump
for f in load_employees.dump load_dept_emp.dump load_titles.dump load_salaries1.dump; do
  take datacharmer/test_db $TESTDB $f my/employees/$f 2>/dev/null || echo "absent (over 4 MiB in this mirror): $f"
done
# A truncated copy of load_employees.dump (first 5,207 employees) for size-limited mirrors.
take Ercion/python_aws_rds_mysql 4133201c36da7b0c9a80aa6cd64e44b710b4e0cc load_employees.dump my/employees/load_employees.head.dump

WORLD=d68ae28e65b34cdc084add42d89bce1750423be1       # SynergOps/SQL: Oracle's world-db/world.sql
take SynergOps/SQL $WORLD world-db/world.sql my/world/world.sql

take lerocha/chinook-database $CHINOOK ChinookDatabase/DataSources/Chinook_MySql.sql my/chinook/Chinook_MySql.sql
echo "done: $DATA"
