-- Facts about one PostgreSQL database, one per line: CHECK <TAB> OBJECT <TAB> VALUE.
-- Run with: psql -X -At -F '<TAB>' -v ON_ERROR_STOP=1 -f pg_facts.sql DB
-- Every name is printed schema-qualified (search_path is empty), index names are replaced by
-- IDX, and nothing here depends on OIDs, so two databases can be compared line by line.
SET search_path = '';
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SET IntervalStyle = 'postgres';
SET extra_float_digits = 3;
SET bytea_output = 'hex';
SET lc_messages = 'C';

-- user relations: ordinary, partitioned and foreign tables outside the system schemas,
-- not members of an extension, not ferry's own bookkeeping tables
CREATE TEMP VIEW fid_rel AS
SELECT c.oid, c.relkind, c.relispartition,
       format('%I.%I', n.nspname, c.relname) AS qname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
  AND c.relname NOT LIKE '\_ferry%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'e');

SELECT 'table', qname, relkind::text FROM fid_rel ORDER BY 2;

-- columns
SELECT 'col', r.qname || '.' || quote_ident(a.attname),
       'pos=' || row_number() OVER (PARTITION BY r.oid ORDER BY a.attnum)
       || E'\x1f' || 'type=' || format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
               THEN ' COLLATE ' || (SELECT format('%I.%I', cn.nspname, co.collname)
                                    FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace
                                    WHERE co.oid = a.attcollation) ELSE '' END
       || E'\x1f' || 'notnull=' || a.attnotnull
       || E'\x1f' || 'default=' || coalesce(CASE WHEN a.attgenerated = '' THEN pg_get_expr(ad.adbin, ad.adrelid) END, '')
       || E'\x1f' || 'generated=' || coalesce(CASE WHEN a.attgenerated <> '' THEN a.attgenerated::text || ':' || pg_get_expr(ad.adbin, ad.adrelid) END, '')
       || E'\x1f' || 'identity=' || a.attidentity::text
FROM fid_rel r
JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
ORDER BY 2;

SELECT 'colorder', r.qname,
       coalesce((SELECT string_agg(quote_ident(a.attname), ',' ORDER BY a.attnum)
                 FROM pg_attribute a WHERE a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped), '')
FROM fid_rel r ORDER BY 2;

-- constraints: p primary key, u unique, f foreign key, x exclusion, c check (not carried)
SELECT 'con_' || con.contype::text, r.qname, pg_get_constraintdef(con.oid)
       || CASE WHEN con.contype = 'c' THEN ' [' || con.conname || ']' ELSE '' END
FROM fid_rel r JOIN pg_constraint con ON con.conrelid = r.oid
WHERE con.contype IN ('p', 'u', 'f', 'x', 'c')
ORDER BY 1, 2, 3;

-- indexes not backing a constraint, names normalised
SELECT CASE WHEN i.indexprs IS NOT NULL OR i.indpred IS NOT NULL THEN 'idx_expr' ELSE 'idx' END,
       r.qname,
       regexp_replace(pg_get_indexdef(i.indexrelid),
                      '^(CREATE (UNIQUE )?INDEX )("([^"]|"")*"|\S+)( ON )', '\1IDX\5')
FROM fid_rel r JOIN pg_index i ON i.indrelid = r.oid
WHERE NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid
                  AND con.conrelid = r.oid AND con.contype IN ('p', 'u', 'x'))
ORDER BY 1, 2, 3;

-- inheritance (not partitions) and partition trees
SELECT 'inherits', r.qname,
       string_agg(format('%I.%I', pn.nspname, p.relname), ',' ORDER BY ih.inhseqno)
FROM fid_rel r JOIN pg_inherits ih ON ih.inhrelid = r.oid
JOIN pg_class p ON p.oid = ih.inhparent JOIN pg_namespace pn ON pn.oid = p.relnamespace
WHERE NOT r.relispartition
GROUP BY r.qname ORDER BY 2;

SELECT 'partkey', r.qname, pg_get_partkeydef(r.oid)
FROM fid_rel r WHERE r.relkind = 'p' ORDER BY 2;

SELECT 'partof', r.qname,
       format('%I.%I', pn.nspname, p.relname) || ' ' || pg_get_expr(c.relpartbound, c.oid)
FROM fid_rel r JOIN pg_class c ON c.oid = r.oid
JOIN pg_inherits ih ON ih.inhrelid = r.oid
JOIN pg_class p ON p.oid = ih.inhparent JOIN pg_namespace pn ON pn.oid = p.relnamespace
WHERE r.relispartition ORDER BY 2;

-- user-defined types (not table row types, not arrays, not extension members)
CREATE TEMP VIEW fid_type AS
SELECT t.oid, t.typtype, format('%I.%I', n.nspname, t.typname) AS qname, t.typrelid
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
  AND t.typtype IN ('e', 'd', 'c', 'r', 'b')
  AND NOT (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) <> 'c')
  AND NOT (t.typtype = 'b' AND t.typcategory = 'A')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                  AND d.objid = t.oid AND d.deptype = 'e');

SELECT 'type', ft.qname,
  CASE ft.typtype
  WHEN 'e' THEN 'enum (' || (SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder)
                            FROM pg_enum e WHERE e.enumtypid = ft.oid) || ')'
  WHEN 'd' THEN 'domain ' || format_type(t.typbasetype, t.typtypmod)
                || CASE WHEN t.typnotnull THEN ' NOT NULL' ELSE '' END
                || coalesce(' DEFAULT ' || t.typdefault, '')
                || coalesce((SELECT ' ' || string_agg(pg_get_constraintdef(c.oid), ' ' ORDER BY pg_get_constraintdef(c.oid))
                             FROM pg_constraint c WHERE c.contypid = ft.oid), '')
  WHEN 'c' THEN 'composite (' || coalesce((SELECT string_agg(quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum)
                                  FROM pg_attribute a WHERE a.attrelid = ft.typrelid AND a.attnum > 0 AND NOT a.attisdropped), '') || ')'
  WHEN 'r' THEN (SELECT 'range (subtype=' || format_type(rg.rngsubtype, NULL)
                        || coalesce(', opclass=' || (SELECT opcname FROM pg_opclass WHERE oid = rg.rngsubopc), '')
                        || CASE WHEN rg.rngcollation <> 0 THEN ', collation=' || (SELECT collname FROM pg_collation WHERE oid = rg.rngcollation) ELSE '' END
                        || CASE WHEN rg.rngcanonical <> 0 THEN ', canonical=' || rg.rngcanonical::regproc::text ELSE '' END
                        || CASE WHEN rg.rngsubdiff <> 0 THEN ', subtype_diff=' || rg.rngsubdiff::regproc::text ELSE '' END
                        || ')' FROM pg_range rg WHERE rg.rngtypid = ft.oid)
  ELSE 'base type (input=' || t.typinput::regproc::text || ')'
  END
FROM fid_type ft JOIN pg_type t ON t.oid = ft.oid ORDER BY 2;

-- which types the tables' columns use (directly, generated columns left out; compare.py
-- closes over domains, composites, ranges and arrays)
SELECT DISTINCT 'typeuse', r.qname, format('%I.%I', tn.nspname, coalesce(et.typname, t.typname))
FROM fid_rel r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
     AND a.attgenerated = ''
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A'
JOIN pg_namespace tn ON tn.oid = coalesce(et.typnamespace, t.typnamespace)
WHERE tn.nspname NOT IN ('pg_catalog', 'information_schema')
ORDER BY 2, 3;

SELECT DISTINCT 'typedep', ft.qname, format('%I.%I', dn.nspname, dt.typname)
FROM fid_type ft JOIN pg_type t ON t.oid = ft.oid
JOIN pg_type dt ON dt.oid IN (t.typbasetype, (SELECT rngsubtype FROM pg_range WHERE rngtypid = t.oid))
JOIN pg_namespace dn ON dn.oid = dt.typnamespace
WHERE dn.nspname NOT IN ('pg_catalog', 'information_schema')
ORDER BY 2, 3;
SELECT DISTINCT 'typedep', ft.qname, format('%I.%I', dn.nspname, coalesce(et.typname, dt.typname))
FROM fid_type ft JOIN pg_attribute a ON a.attrelid = ft.typrelid AND ft.typrelid <> 0 AND a.attnum > 0
JOIN pg_type dt ON dt.oid = a.atttypid
LEFT JOIN pg_type et ON et.oid = dt.typelem AND dt.typcategory = 'A'
JOIN pg_namespace dn ON dn.oid = coalesce(et.typnamespace, dt.typnamespace)
WHERE dn.nspname NOT IN ('pg_catalog', 'information_schema')
ORDER BY 2, 3;

-- by design not carried (yet): listed, never counted as a fidelity failure
SELECT 'nc_trigger', r.qname, tg.tgname
FROM fid_rel r JOIN pg_trigger tg ON tg.tgrelid = r.oid WHERE NOT tg.tgisinternal ORDER BY 2, 3;
SELECT 'nc_rule', format('%I.%I', n.nspname, c.relname), rw.rulename
FROM pg_rewrite rw JOIN pg_class c ON c.oid = rw.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE rw.rulename <> '_RETURN' AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 2, 3;
SELECT 'nc_view', format('%I.%I', n.nspname, c.relname), c.relkind::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 2;
SELECT 'nc_function', format('%I.%I', n.nspname, p.proname), pg_get_function_identity_arguments(p.oid)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
ORDER BY 2, 3;
SELECT 'nc_sequence', format('%I.%I', n.nspname, c.relname), coalesce(s.last_value::text, 'unset')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_sequences s
  ON s.schemaname = n.nspname AND s.sequencename = c.relname
WHERE c.relkind = 'S' AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 2;
SELECT 'nc_comment', r.qname, coalesce('.' || quote_ident(a.attname), '') || ' ' || d.description
FROM fid_rel r JOIN pg_description d ON d.objoid = r.oid AND d.classoid = 'pg_class'::regclass
LEFT JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum = d.objsubid AND d.objsubid > 0
ORDER BY 2, 3;
SELECT 'nc_grant', r.qname, c.relacl::text
FROM fid_rel r JOIN pg_class c ON c.oid = r.oid WHERE c.relacl IS NOT NULL ORDER BY 2;
SELECT 'nc_policy', r.qname, pol.polname
FROM fid_rel r JOIN pg_policy pol ON pol.polrelid = r.oid ORDER BY 2, 3;
SELECT 'nc_tableopt', r.qname,
       concat_ws(' ', CASE WHEN c.relpersistence = 'u' THEN 'UNLOGGED' END,
                 CASE WHEN am.amname IS NOT NULL AND am.amname <> 'heap' THEN 'USING ' || am.amname END,
                 CASE WHEN c.reloptions IS NOT NULL THEN 'WITH ' || c.reloptions::text END,
                 CASE WHEN c.relrowsecurity THEN 'ROW LEVEL SECURITY' END)
FROM fid_rel r JOIN pg_class c ON c.oid = r.oid LEFT JOIN pg_am am ON am.oid = c.relam
WHERE c.relpersistence = 'u' OR (am.amname IS NOT NULL AND am.amname <> 'heap') OR c.reloptions IS NOT NULL OR c.relrowsecurity
ORDER BY 2;
