-- Facts about one MariaDB/MySQL database (the current one), one per line:
-- CHECK <TAB> OBJECT <TAB> VALUE. Run with: mariadb -N -B -r DB < mysql_facts.sql
-- Row digests come from the statements compare.py writes (rowsql). Index and constraint
-- names are left out, so two databases compare line by line.
SET SESSION group_concat_max_len = 1048576;
SET SESSION time_zone = '+00:00';

CREATE TEMPORARY TABLE fid_tab AS
SELECT TABLE_NAME AS t, ENGINE AS engine, TABLE_COLLATION AS coll, ROW_FORMAT AS row_format,
       TABLE_COMMENT AS cmt, AUTO_INCREMENT AS ai, CREATE_OPTIONS AS opts
FROM information_schema.TABLES
WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED')
  AND TABLE_NAME NOT LIKE '\_ferry%';

SELECT 'table', t, CONCAT('engine=', IFNULL(engine, '')) FROM fid_tab ORDER BY t;

SELECT 'col', CONCAT(c.TABLE_NAME, '.', c.COLUMN_NAME),
  CONCAT('pos=', c.ORDINAL_POSITION, 0x1f,
         'type=', c.COLUMN_TYPE,
         IF(c.CHARACTER_SET_NAME IS NULL, '', CONCAT(' CHARSET ', c.CHARACTER_SET_NAME, ' COLLATE ', c.COLLATION_NAME)), 0x1f,
         'notnull=', IF(c.IS_NULLABLE = 'NO', 'true', 'false'), 0x1f,
         'default=', IF(c.IS_GENERATED = 'ALWAYS', '', IFNULL(c.COLUMN_DEFAULT, '')),
         IF(c.EXTRA LIKE '%on update%', CONCAT(' ', REGEXP_SUBSTR(c.EXTRA, 'on update [^ ]+')), ''), 0x1f,
         'generated=', IF(c.IS_GENERATED = 'ALWAYS', CONCAT(c.EXTRA, ':', IFNULL(c.GENERATION_EXPRESSION, '')), ''), 0x1f,
         'identity=', IF(c.EXTRA LIKE '%auto_increment%', 'auto_increment', ''))
FROM information_schema.COLUMNS c JOIN fid_tab ON fid_tab.t = c.TABLE_NAME
WHERE c.TABLE_SCHEMA = DATABASE() ORDER BY 2;

SELECT 'colorder', c.TABLE_NAME, GROUP_CONCAT(c.COLUMN_NAME ORDER BY c.ORDINAL_POSITION SEPARATOR ',')
FROM information_schema.COLUMNS c JOIN fid_tab ON fid_tab.t = c.TABLE_NAME
WHERE c.TABLE_SCHEMA = DATABASE() GROUP BY c.TABLE_NAME ORDER BY 2;

-- indexes: primary key, unique, other; prefix, FULLTEXT and SPATIAL ones are documented as
-- not carried (idx_expr)
SELECT CASE WHEN INDEX_NAME = 'PRIMARY' THEN 'con_p'
            WHEN MAX(SUB_PART) IS NOT NULL OR INDEX_TYPE IN ('FULLTEXT', 'SPATIAL') THEN 'idx_expr'
            WHEN NON_UNIQUE = 0 THEN 'con_u'
            ELSE 'idx' END,
       TABLE_NAME,
       CONCAT(IF(INDEX_NAME = 'PRIMARY', 'PRIMARY KEY', IF(NON_UNIQUE = 0, 'UNIQUE', 'INDEX')),
              ' USING ', INDEX_TYPE, ' (',
              GROUP_CONCAT(CONCAT(IFNULL(COLUMN_NAME, '<expr>'), IF(SUB_PART IS NULL, '', CONCAT('(', SUB_PART, ')')),
                                  IF(COLLATION = 'D', ' DESC', '')) ORDER BY SEQ_IN_INDEX SEPARATOR ', '),
              ')', IF(MAX(IGNORED) = 'YES', ' IGNORED', ''))
FROM information_schema.STATISTICS s JOIN fid_tab ON fid_tab.t = s.TABLE_NAME
WHERE s.TABLE_SCHEMA = DATABASE()
GROUP BY TABLE_NAME, INDEX_NAME, NON_UNIQUE, INDEX_TYPE ORDER BY 1, 2, 3;

SELECT 'con_f', rc.TABLE_NAME,
       CONCAT('FOREIGN KEY (', GROUP_CONCAT(k.COLUMN_NAME ORDER BY k.ORDINAL_POSITION SEPARATOR ', '),
              ') REFERENCES ', IF(rc.UNIQUE_CONSTRAINT_SCHEMA = DATABASE(), '', CONCAT(rc.UNIQUE_CONSTRAINT_SCHEMA, '.')),
              rc.REFERENCED_TABLE_NAME, '(',
              GROUP_CONCAT(k.REFERENCED_COLUMN_NAME ORDER BY k.ORDINAL_POSITION SEPARATOR ', '),
              ') ON UPDATE ', rc.UPDATE_RULE, ' ON DELETE ', rc.DELETE_RULE)
FROM information_schema.REFERENTIAL_CONSTRAINTS rc
JOIN information_schema.KEY_COLUMN_USAGE k
  ON k.CONSTRAINT_SCHEMA = rc.CONSTRAINT_SCHEMA AND k.CONSTRAINT_NAME = rc.CONSTRAINT_NAME
 AND k.TABLE_NAME = rc.TABLE_NAME
WHERE rc.CONSTRAINT_SCHEMA = DATABASE()
GROUP BY rc.TABLE_NAME, rc.CONSTRAINT_NAME, rc.UNIQUE_CONSTRAINT_SCHEMA, rc.REFERENCED_TABLE_NAME,
         rc.UPDATE_RULE, rc.DELETE_RULE
ORDER BY 2, 3;

SELECT 'con_c', cc.TABLE_NAME, CONCAT('CHECK (', cc.CHECK_CLAUSE, ') [', cc.CONSTRAINT_NAME, ']')
FROM information_schema.CHECK_CONSTRAINTS cc
WHERE cc.CONSTRAINT_SCHEMA = DATABASE() ORDER BY 2, 3;

-- partitioning
SELECT DISTINCT 'partkey', p.TABLE_NAME,
       CONCAT(p.PARTITION_METHOD, ' (', IFNULL(p.PARTITION_EXPRESSION, ''), ')',
              IFNULL(CONCAT(' SUBPARTITION BY ', p.SUBPARTITION_METHOD, ' (', p.SUBPARTITION_EXPRESSION, ')'), ''))
FROM information_schema.PARTITIONS p JOIN fid_tab ON fid_tab.t = p.TABLE_NAME
WHERE p.TABLE_SCHEMA = DATABASE() AND p.PARTITION_NAME IS NOT NULL ORDER BY 2;
SELECT 'partof', CONCAT(p.TABLE_NAME, '#', p.PARTITION_NAME, IFNULL(CONCAT('#', p.SUBPARTITION_NAME), '')),
       CONCAT(p.TABLE_NAME, ' ', IFNULL(p.PARTITION_DESCRIPTION, ''))
FROM information_schema.PARTITIONS p JOIN fid_tab ON fid_tab.t = p.TABLE_NAME
WHERE p.TABLE_SCHEMA = DATABASE() AND p.PARTITION_NAME IS NOT NULL ORDER BY 2;

-- by design not carried (yet)
SELECT 'nc_trigger', EVENT_OBJECT_TABLE, TRIGGER_NAME FROM information_schema.TRIGGERS
WHERE TRIGGER_SCHEMA = DATABASE() ORDER BY 2, 3;
SELECT 'nc_view', TABLE_NAME, 'v' FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE() ORDER BY 2;
SELECT 'nc_function', ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES
WHERE ROUTINE_SCHEMA = DATABASE() ORDER BY 2, 3;
SELECT 'nc_event', EVENT_NAME, '' FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE() ORDER BY 2;
SELECT 'nc_sequence', t, CONCAT('AUTO_INCREMENT=', ai) FROM fid_tab WHERE ai IS NOT NULL ORDER BY 2;
SELECT 'nc_comment', t, cmt FROM fid_tab WHERE cmt <> '' ORDER BY 2;
SELECT 'nc_comment', CONCAT(TABLE_NAME, '.', COLUMN_NAME), COLUMN_COMMENT FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = DATABASE() AND COLUMN_COMMENT <> '' ORDER BY 2;
SELECT 'nc_tableopt', t, CONCAT_WS(' ', CONCAT('collation=', coll), CONCAT('row_format=', row_format),
                                   IF(opts <> '', CONCAT('options=', opts), NULL))
FROM fid_tab ORDER BY 2;
SELECT 'nc_grant', TABLE_NAME, CONCAT(GRANTEE, ' ', PRIVILEGE_TYPE) FROM information_schema.TABLE_PRIVILEGES
WHERE TABLE_SCHEMA = DATABASE() ORDER BY 2, 3;
