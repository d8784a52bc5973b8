-- A few rows for the omnibus schema (yugabyte/yb-voyager migtests/tests/pg/omnibus), which
-- is DDL only. Written for this suite: they give the composite, range, enum, domain, hstore,
-- geometric, network, bit, interval, money and inheritance columns values to carry.
-- Loaded after the omnibus files, errors recorded but not fatal.
SET search_path = '';

INSERT INTO composite_type_examples.ordinary_table (basic_, nested)
VALUES (ROW(2, 'two'), ROW(ROW(3, 'three'), 'b')), (ROW(5, NULL), NULL), (NULL, ROW(ROW(7, 'x"y,z'), 'c'));
INSERT INTO composite_type_examples.inherited_table (basic_, nested)
VALUES (ROW(11, 'child row'), ROW(ROW(12, 'nested'), 'a'));
INSERT INTO composite_type_examples.equivalent_rowtype VALUES (1, 'one'), (2, NULL);
INSERT INTO composite_type_examples.i_0 VALUES (1), (NULL);
INSERT INTO composite_type_examples.i_1 VALUES (ROW(1)), (NULL);
INSERT INTO composite_type_examples.i_2 VALUES (ROW(ROW(2)));

INSERT INTO enum_example.bugs (description, status, severity)
VALUES ('first', 'new', 'high'), ('second', 'closed', 'low'), ('third', NULL, 'med');
INSERT INTO enum_example.bugs_clone (description, status, severity) VALUES ('clone', 'open', 'low');
INSERT INTO enum_example._bug_severity SELECT id, severity FROM enum_example.bugs;

INSERT INTO range_type_example.example_tbl
VALUES ('[1.5, 2.5)'), ('(,3]'), ('empty'), (NULL), ('[-Infinity, 0]');

INSERT INTO domain_examples.us_snail_addy (street1, city, postal)
VALUES ('1 Main St', 'Springfield', '12345'), ('2 Side St', 'Shelbyville', '12345-6789');
INSERT INTO domain_examples.even_numbers VALUES (2), (4), (NULL);

INSERT INTO extension_example.testhstore VALUES ('a=>1, b=>"two words", c=>NULL'), ('');

INSERT INTO base_type_examples.default_test VALUES ('text value', '7'), (DEFAULT, DEFAULT);

INSERT INTO ordinary_tables.numeric_type_examples
  (an_integer, an_int, an_int4, an_int8, a_bigint, a_smallint, a_decimal, a_numeric, a_real, a_double,
   another_numeric, yet_another_numeric)
VALUES (1, -2, 2147483647, -9223372036854775808, 9223372036854775807, -32768, 1.5, 'NaN', 'Infinity', '-0',
        999, 12.3456),
       (2, NULL, NULL, NULL, NULL, NULL, 123456789012345678901234567890.123456789, -0.000001, 1.17549435e-38, 'NaN',
        NULL, -99.9999),
       (3, 0, 0, 0, 0, 0, 'NaN', '-Infinity', '-Infinity', '-Infinity', 'NaN', 'NaN');
INSERT INTO ordinary_tables.money_example VALUES ('12.34'), ('-0.01'), (NULL);
INSERT INTO ordinary_tables.character_examples VALUES ('a', 'varchar', 'ten chars!', 'x', 'padded'), ('b', NULL, '', ' ', NULL);
INSERT INTO ordinary_tables.binary_examples VALUES ('\x00ff10'), ('\x');
INSERT INTO ordinary_tables.time VALUES
  ('2024-02-29 12:34:56.789+05:30', '2024-01-01 00:00:00.12+00', '1999-12-31 23:59:59.999999', '2000-01-01 00:00:00.123',
   '12:00:00+02', '23:59:59.1234-08', '00:00:00', '24:00:00', '0044-03-15 BC',
   '3 years', '13 months', '40 days', '25 hours', '61 minutes', '1.5 seconds', '1 year 2 months',
   '3 days 4 hours', '3 days 04:05', '3 days 04:05:06.5', '04:05', '04:05:06.25', '05:06.75'),
  ('infinity', '-infinity', 'infinity', '-infinity', NULL, NULL, NULL, NULL, 'infinity',
   '-3 years', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '-1 days -00:00:01', NULL, NULL, NULL);
INSERT INTO ordinary_tables.boolean_examples VALUES (true), (false), (NULL);
INSERT INTO ordinary_tables.geometric_examples VALUES
  ('(1,2)', '{1,-1,0}', '[(0,0),(1,1)]', '(2,2),(0,0)', '[(0,0),(1,1),(2,0)]', '((0,0),(1,1),(2,0))', '<(0,0),1.5>');
INSERT INTO ordinary_tables.network_addr_examples VALUES
  ('192.168.100.128/25', '2001:db8::1/64', '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05'), (NULL, '10.0.0.1', NULL, NULL);
INSERT INTO ordinary_tables.bit_string_examples VALUES (B'1010101010', B'101'), (NULL, B'');

INSERT INTO idx_ex.films VALUES (1, 'Alien', 'Scott', 9, 'A1'), (2, 'Brazil', 'Gilliam', 8, NULL);
INSERT INTO trigger_test.accounts VALUES (1, 10.5), (2, -3);
INSERT INTO am_examples.fast_emp4000 VALUES ('(1,1),(0,0)'), (NULL);
INSERT INTO am_examples.tableam_tbl_heap2 VALUES (1), (2);
INSERT INTO am_examples.tableam_parted_heap2 VALUES ('c', 1), ('d', 2);
INSERT INTO fn_examples.ordinary_table VALUES (1), (2);
