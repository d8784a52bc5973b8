-- 2,000,000-row mixed-type table with ~5% NULLs in several columns (MariaDB: the row
-- source is the Sequence engine's seq_1_to_N; bench/mysql.sh replaces 2000000 with ROWS).
-- Values are derived from the row number (CRC32, MD5), so every load is the same table.
DROP TABLE IF EXISTS events;
CREATE TABLE events (
  id bigint NOT NULL PRIMARY KEY,
  user_id int,
  amount decimal(12,2),
  price double,
  name varchar(64),
  status enum('pending','active','shipped','delivered','cancelled','refunded') NOT NULL,
  flag boolean,
  created_at timestamp(6) NULL,
  day date,
  uid char(36) CHARACTER SET ascii,
  payload json
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO events
SELECT seq,
  IF(CRC32(seq) % 20 = 0, NULL, CRC32(seq * 3) % 1000000),
  IF(CRC32(seq * 5) % 20 = 0, NULL, (CRC32(seq * 7) % 10000000) / 100),
  (CRC32(seq * 11) % 100000000) / 100000.0,
  IF(CRC32(seq * 13) % 20 = 0, NULL, SUBSTR(CONCAT(MD5(seq), MD5(seq * 7)), 1, 10 + seq * 7919 % 31)),
  ELT(1 + CRC32(seq * 17) % 6, 'pending', 'active', 'shipped', 'delivered', 'cancelled', 'refunded'),
  IF(CRC32(seq * 19) % 20 = 0, NULL, CRC32(seq * 23) % 2),
  TIMESTAMP '2020-01-01 00:00:00' + INTERVAL (CRC32(seq * 29) % 129600000) SECOND
    + INTERVAL (CRC32(seq * 31) % 1000000) MICROSECOND,
  IF(CRC32(seq * 37) % 20 = 0, NULL, DATE '2020-01-01' + INTERVAL (CRC32(seq * 41) % 1500) DAY),
  CONCAT_WS('-', SUBSTR(MD5(seq * 43), 1, 8), SUBSTR(MD5(seq * 43), 9, 4), SUBSTR(MD5(seq * 43), 13, 4),
            SUBSTR(MD5(seq * 43), 17, 4), SUBSTR(MD5(seq * 43), 21, 12)),
  IF(CRC32(seq * 47) % 20 = 0, NULL,
     JSON_OBJECT('k', CRC32(seq * 53) % 100, 'tag', SUBSTR(MD5(seq * 59), 1, 6), 'ok', CRC32(seq * 61) % 2 = 1))
FROM seq_1_to_2000000;
