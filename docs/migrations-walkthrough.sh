#!/usr/bin/env bash
# The staged-migration walk-through of docs/MIGRATIONS.md, run for real against the local
# MariaDB and PostgreSQL servers (it drops and creates databases orders_svc and orders_pg).
# Usage: PATH=$CARGO_TARGET_DIR/debug:$PATH bash docs/migrations-walkthrough.sh
set -uo pipefail
F=${FERRY:-ferry}
export PGOPTIONS="-c client_min_messages=warning"
W=${WORK:-/tmp/ferry-walkthrough}; rm -rf $W; mkdir -p $W; cd $W
SRC=mysql://root@127.0.0.1:3306/orders_svc
DST=postgres://postgres@127.0.0.1:5432/orders_pg
mariadb -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS orders_svc; CREATE DATABASE orders_svc"
psql -X -q -d postgres://postgres@127.0.0.1:5432/test -c "DROP DATABASE IF EXISTS orders_pg" -c "CREATE DATABASE orders_pg"
mariadb -h 127.0.0.1 -u root orders_svc <<'SQL'
CREATE TABLE customers (
  id INT AUTO_INCREMENT PRIMARY KEY,
  email VARCHAR(100) NOT NULL UNIQUE,
  name VARCHAR(100) NOT NULL,
  updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
);
CREATE TABLE orders (
  id INT AUTO_INCREMENT PRIMARY KEY,
  customer_id INT NOT NULL,
  total DECIMAL(10,2) NOT NULL CHECK (total >= 0),
  status VARCHAR(20) NOT NULL DEFAULT 'new',
  updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE CASCADE
);
CREATE TABLE settings (k VARCHAR(50) PRIMARY KEY, v VARCHAR(200));
INSERT INTO customers (email, name, updated_at) SELECT CONCAT('c', seq, '@example.com'), CONCAT('Customer ', seq), TIMESTAMP '2026-11-01 00:00:00' + INTERVAL seq MINUTE FROM seq_1_to_1000;
INSERT INTO orders (customer_id, total, updated_at) SELECT 1 + seq % 1000, seq % 500, TIMESTAMP '2026-11-01 00:00:00' + INTERVAL seq MINUTE FROM seq_1_to_5000;
INSERT INTO settings VALUES ('currency', 'EUR'), ('vat', '0.2');
SQL
run() { echo "\$ ${*//$W\//}"; "$@" 2>&1 | sed "s#$W/##g"; echo "(exit ${PIPESTATUS[0]})"; echo; }
echo "## 1. analyse"
run $F keygen transfer.key
run $F export $SRC b1 --dry-run --cursor customers=updated_at --cursor orders=updated_at
echo "## 2. full load"
run $F export $SRC b1 --key-file transfer.key --cursor customers=updated_at --cursor orders=updated_at
run $F import b1 $DST --key-file transfer.key
echo "## 3. first link"
sleep 1
mariadb -h 127.0.0.1 -u root orders_svc -e "UPDATE customers SET name = 'Renamed' WHERE id = 7; INSERT INTO customers (email, name) VALUES ('new@example.com', 'New'); INSERT INTO orders (customer_id, total) VALUES (LAST_INSERT_ID(), 99.5); DELETE FROM orders WHERE id = 10; UPDATE settings SET v = '0.21' WHERE k = 'vat';"
run $F export $SRC b2 --key-file transfer.key --since b1 --lookback 5m --deletes
run $F inspect b2
run $F import b2 $DST --key-file transfer.key
echo "## 4. second link"
sleep 1
mariadb -h 127.0.0.1 -u root orders_svc -e "DELETE FROM customers WHERE id = 8; UPDATE orders SET status = 'paid' WHERE id BETWEEN 100 AND 120;"
run $F export $SRC b3 --key-file transfer.key --since b2 --lookback 5m --deletes
run $F import b1 $DST --key-file transfer.key
run $F import b3 $DST --key-file transfer.key
echo "## 5. cutover check"
run $F compare $SRC $DST
run $F status $DST
run psql -X -d $DST -c "INSERT INTO orders (customer_id, total) VALUES (1, 5) RETURNING id, status, updated_at IS NOT NULL AS stamped"
run psql -X -d $DST -c "INSERT INTO orders (customer_id, total) VALUES (1, -5)"
