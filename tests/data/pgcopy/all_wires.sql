-- One column per Wire format (and a few PostgreSQL types that travel as one), five rows:
-- ordinary values, minimums, maximums, odd corners, and all NULLs.
-- all_wires.copy is this query's `\copy (...) TO ... (FORMAT binary)` output from PostgreSQL 15.
SELECT b, i2, i4, i8, f4, f8, n, n12, n38, n60, t, bp, vc, jb, js, by, d, ts, tz, tm, iv, u, ai, at, an
FROM (VALUES
  (1, true, 1::int2, 2::int4, 3::int8, 1.5::float4, 2.25::float8,
   '1.500'::numeric, 12.30::numeric(12,2), 1::numeric(38,10),
   12345678901234567890.123456789::numeric(60,10),
   'hello'::text, 'ab'::char(5), 'vc'::varchar(10), '{"b":1,"a":[1,2]}'::jsonb, '{"b":1,"a":[1,2]}'::json,
   '\x00ff00'::bytea, '2024-02-29'::date, '2024-06-30 12:34:56.123456'::timestamp,
   '2024-06-30 12:34:56.123456+02'::timestamptz, '23:59:59.999999'::time,
   interval '-1 year 2 mons -3 days 04:05:06.789', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid,
   ARRAY[1,NULL,3]::int4[], ARRAY['a',NULL,'','ü']::text[], ARRAY[1.5,NULL,'NaN']::numeric[]),
  (2, false, '-32768'::int2, '-2147483648'::int4, '-9223372036854775808'::int8, '-Infinity'::float4, '-0'::float8,
   'NaN'::numeric, -9999999999.99::numeric(12,2), -9999999999999999999999999999.9999999999::numeric(38,10),
   '-99999999999999999999999999999999999999999999999999.9999999999'::numeric(60,10),
   E'\u0001 é € 𝄞 𠀀 \U000E0001 \U0010FFFF', ''::char(5), ''::varchar(10), '[]'::jsonb, ' { "a" : 1 } '::json,
   '\x'::bytea, '4714-11-24 BC'::date, '4714-11-24 00:00:00 BC'::timestamp,
   '-infinity'::timestamptz, '00:00:00'::time,
   interval '0', '00000000-0000-0000-0000-000000000000'::uuid,
   '{}'::int4[], '{}'::text[], '{}'::numeric[]),
  (3, true, 32767::int2, 2147483647::int4, 9223372036854775807::int8, 'NaN'::float4, 'Infinity'::float8,
   'Infinity'::numeric, 0::numeric(12,2), 9999999999999999999999999999.9999999999::numeric(38,10),
   0::numeric(60,10),
   '', 'abcde'::char(5), 'x   '::varchar(10), '{"a":null,"b":"é","c":1.50}'::jsonb, 'null'::json,
   '\x00'::bytea, 'infinity'::date, 'infinity'::timestamp,
   'infinity'::timestamptz, '24:00:00'::time,
   interval '1 mon 2 days 00:00:00.000001', 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid,
   NULL::int4[], ARRAY[NULL]::text[], NULL::numeric[]),
  (4, false, 0::int2, 0::int4, 0::int8, '-0'::float4, 'NaN'::float8,
   '-Infinity'::numeric, -0.01::numeric(12,2), -0.0000000001::numeric(38,10),
   0.0000000001::numeric(60,10),
   'bpchar kept: ', '  x'::char(5), 'ü'::varchar(10), '1.0e2'::jsonb, '{"dup":1,"dup":2}'::json,
   '\xdeadbeef'::bytea, '0001-01-01'::date, '0001-01-01 00:00:00'::timestamp,
   '1999-12-31 23:59:59.999999+00'::timestamptz, '12:00:00.5'::time,
   interval '-178000000 years -3 days -00:00:00.000001', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid,
   ARRAY[2147483647,-2147483648]::int4[], ARRAY['x y','"q"','{}','NULL']::text[],
   ARRAY['-0.01','12345678901234567890.123456789','0.000000000000000000010','1e20','-Infinity']::numeric[]),
  (5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
) AS v(k, b, i2, i4, i8, f4, f8, n, n12, n38, n60, t, bp, vc, jb, js, by, d, ts, tz, tm, iv, u, ai, at, an)
ORDER BY k
