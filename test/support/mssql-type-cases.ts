import type { MssqlColumnType } from '../../connectors/mssql-trigger/types.js';

/**
 * One case per SQL Server type: the catalog's description of a column, the
 * T-SQL expression the trigger writes for it (column `i.[c]`), the
 * PostgreSQL type it maps to, and samples of the exact text SQL Server
 * prints in that style (formats from Microsoft's CAST and CONVERT page)
 * with the PostgreSQL text form expected from the normalizer. Shared by
 * test/mssql-types.test.ts (pure) and test/mssql-types.pg.test.ts (which
 * casts each expected text at a real PostgreSQL and reads it back).
 */
export interface TypeCase {
  readonly label: string;
  readonly type: MssqlColumnType;
  readonly expr: string;
  readonly pgType: string;
  /** [SQL Server's text, PostgreSQL's text form] */
  readonly samples: readonly (readonly [string, string])[];
}

const t = (name: string, maxLength: number, precision = 0, scale = 0): MssqlColumnType => ({ name, maxLength, precision, scale });

export const TYPE_CASES: readonly TypeCase[] = [
  { label: 'tinyint', type: t('tinyint', 1, 3), expr: 'CONVERT(nvarchar(20), i.[c])', pgType: 'smallint', samples: [['0', '0'], ['255', '255']] },
  { label: 'smallint', type: t('smallint', 2, 5), expr: 'CONVERT(nvarchar(20), i.[c])', pgType: 'smallint', samples: [['-32768', '-32768'], ['32767', '32767']] },
  { label: 'int', type: t('int', 4, 10), expr: 'CONVERT(nvarchar(20), i.[c])', pgType: 'integer', samples: [['-2147483648', '-2147483648'], ['2147483647', '2147483647']] },
  {
    label: 'bigint',
    type: t('bigint', 8, 19),
    expr: 'CONVERT(nvarchar(20), i.[c])',
    pgType: 'bigint',
    samples: [['-9223372036854775808', '-9223372036854775808'], ['9223372036854775807', '9223372036854775807']],
  },
  {
    label: 'decimal(38,10)',
    type: t('decimal', 17, 38, 10),
    expr: 'CONVERT(nvarchar(60), i.[c])',
    pgType: 'numeric(38,10)',
    samples: [
      ['-1234567890123456789012345678.1234567890', '-1234567890123456789012345678.1234567890'],
      ['9999999999999999999999999999.9999999999', '9999999999999999999999999999.9999999999'],
      ['0.0000000000', '0.0000000000'],
      ['-0.0000000001', '-0.0000000001'],
    ],
  },
  {
    label: 'numeric(38,0)',
    type: t('numeric', 17, 38, 0),
    expr: 'CONVERT(nvarchar(60), i.[c])',
    pgType: 'numeric(38,0)',
    samples: [['-99999999999999999999999999999999999999', '-99999999999999999999999999999999999999'], ['0', '0']],
  },
  { label: 'decimal(10,2)', type: t('decimal', 9, 10, 2), expr: 'CONVERT(nvarchar(60), i.[c])', pgType: 'numeric(10,2)', samples: [['-0.50', '-0.50'], ['12345678.90', '12345678.90']] },
  {
    label: 'money',
    type: t('money', 8, 19, 4),
    expr: 'CONVERT(nvarchar(30), i.[c], 2)',
    pgType: 'numeric(19,4)',
    samples: [
      ['-922337203685477.5808', '-922337203685477.5808'],
      ['922337203685477.5807', '922337203685477.5807'],
      ['0.0000', '0.0000'],
      ['1234.5600', '1234.5600'],
    ],
  },
  {
    label: 'smallmoney',
    type: t('smallmoney', 4, 10, 4),
    expr: 'CONVERT(nvarchar(30), i.[c], 2)',
    pgType: 'numeric(10,4)',
    samples: [['-214748.3648', '-214748.3648'], ['214748.3647', '214748.3647']],
  },
  { label: 'bit', type: t('bit', 1, 1), expr: 'CONVERT(nchar(1), i.[c])', pgType: 'boolean', samples: [['1', 't'], ['0', 'f']] },
  {
    label: 'float',
    type: t('float', 8, 53),
    expr: 'CONVERT(nvarchar(30), i.[c], 3)',
    pgType: 'double precision',
    samples: [
      ['3.1415926535897931E+000', '3.141592653589793'],
      ['1.0000000000000000E+000', '1'],
      ['-2.5000000000000000E-001', '-0.25'],
      ['1.0000000000000001E-001', '0.1'],
      ['1.0000000000000000E-004', '0.0001'],
      ['1.0000000000000001E-005', '1e-05'],
      ['1.2345678901234500E+014', '123456789012345'],
      ['1.0000000000000000E+015', '1e+15'],
      ['1.7976931348623157E+308', '1.7976931348623157e+308'],
      ['-2.2250738585072014E-308', '-2.2250738585072014e-308'],
      ['0.0000000000000000E+000', '0'],
    ],
  },
  {
    label: 'real',
    type: t('real', 4, 24),
    expr: 'CONVERT(nvarchar(30), i.[c], 3)',
    pgType: 'real',
    samples: [
      ['3.14159274E+000', '3.1415927'],
      ['1.00000000E+006', '1e+06'],
      ['1.23456000E+005', '123456'],
      ['-3.40282347E+038', '-3.4028235e+38'],
      ['1.17549435E-038', '1.1754944e-38'],
      ['1.00000001E-001', '0.1'],
    ],
  },
  { label: 'date', type: t('date', 3, 10), expr: 'CONVERT(nvarchar(10), i.[c], 23)', pgType: 'date', samples: [['0001-01-01', '0001-01-01'], ['9999-12-31', '9999-12-31'], ['2024-02-29', '2024-02-29']] },
  {
    label: 'time(7)',
    type: t('time', 5, 16, 7),
    expr: 'CONVERT(nvarchar(16), i.[c], 121)',
    pgType: 'time(6) without time zone',
    samples: [
      ['12:34:56.1234565', '12:34:56.123457'],
      ['12:34:56.1234564', '12:34:56.123456'],
      ['12:34:56.1000000', '12:34:56.1'],
      ['00:00:00.0000000', '00:00:00'],
      ['23:59:59.9999999', '24:00:00'],
    ],
  },
  { label: 'time(0)', type: t('time', 3, 8, 0), expr: 'CONVERT(nvarchar(16), i.[c], 121)', pgType: 'time(0) without time zone', samples: [['08:15:00', '08:15:00']] },
  {
    label: 'datetime',
    type: t('datetime', 8, 23, 3),
    expr: 'CONVERT(nvarchar(23), i.[c], 121)',
    pgType: 'timestamp(3) without time zone',
    samples: [
      ['2024-02-29 13:45:30.997', '2024-02-29 13:45:30.997'],
      ['1753-01-01 00:00:00.000', '1753-01-01 00:00:00'],
      ['9999-12-31 23:59:59.997', '9999-12-31 23:59:59.997'],
      ['2024-06-01 08:00:00.100', '2024-06-01 08:00:00.1'],
    ],
  },
  {
    label: 'smalldatetime',
    type: t('smalldatetime', 4, 16, 0),
    expr: 'CONVERT(nvarchar(23), i.[c], 121)',
    pgType: 'timestamp(0) without time zone',
    samples: [['1900-01-01 00:00:00.000', '1900-01-01 00:00:00'], ['2079-06-06 23:59:00.000', '2079-06-06 23:59:00']],
  },
  {
    label: 'datetime2(7)',
    type: t('datetime2', 8, 27, 7),
    expr: 'CONVERT(nvarchar(27), i.[c], 121)',
    pgType: 'timestamp(6) without time zone',
    samples: [
      ['2024-06-01 08:00:00.1234564', '2024-06-01 08:00:00.123456'],
      ['2024-06-01 08:00:00.1234565', '2024-06-01 08:00:00.123457'],
      ['2024-02-29 23:59:59.9999995', '2024-03-01 00:00:00'],
      ['9999-12-31 23:59:59.9999999', '10000-01-01 00:00:00'],
      ['0001-01-01 00:00:00.0000000', '0001-01-01 00:00:00'],
      ['1969-12-31 23:59:59.9999990', '1969-12-31 23:59:59.999999'],
    ],
  },
  {
    label: 'datetime2(0)',
    type: t('datetime2', 6, 19, 0),
    expr: 'CONVERT(nvarchar(27), i.[c], 121)',
    pgType: 'timestamp(0) without time zone',
    samples: [['2024-06-01 08:00:00', '2024-06-01 08:00:00']],
  },
  {
    label: 'datetimeoffset(7)',
    type: t('datetimeoffset', 10, 34, 7),
    expr: 'CONVERT(nvarchar(34), i.[c], 127)',
    pgType: 'timestamp(6) with time zone',
    samples: [
      ['2024-03-01T12:30:00.1234567+05:45', '2024-03-01 06:45:00.123457+00'],
      ['2024-03-01T21:30:00-03:00', '2024-03-02 00:30:00+00'],
      ['2024-03-01T06:45:00.5Z', '2024-03-01 06:45:00.5+00'],
      ['2024-03-01 12:30:00.1234567 +05:45', '2024-03-01 06:45:00.123457+00'],
      ['0001-01-01T00:00:00+14:00', '0001-12-31 10:00:00+00 BC'],
      ['9999-12-31T23:59:59.9999999-14:00', '10000-01-01 14:00:00+00'],
    ],
  },
  {
    label: 'uniqueidentifier',
    type: t('uniqueidentifier', 16),
    expr: 'CONVERT(nchar(36), i.[c])',
    pgType: 'uuid',
    samples: [['6F9619FF-8B86-D011-B42D-00C04FC964FF', '6f9619ff-8b86-d011-b42d-00c04fc964ff']],
  },
  { label: 'char(4)', type: t('char', 4), expr: 'CONVERT(nvarchar(max), i.[c])', pgType: 'character(4)', samples: [['ab  ', 'ab  ']] },
  { label: 'nchar(3)', type: t('nchar', 6), expr: 'CONVERT(nvarchar(max), i.[c])', pgType: 'character(3)', samples: [['é  ', 'é  ']] },
  { label: 'varchar(20)', type: t('varchar', 20), expr: 'CONVERT(nvarchar(max), i.[c])', pgType: 'character varying(20)', samples: [[`it's "q" \\ /`, `it's "q" \\ /`]] },
  {
    label: 'nvarchar(max)',
    type: t('nvarchar', -1),
    expr: 'CONVERT(nvarchar(max), i.[c])',
    pgType: 'text',
    samples: [['Grüße, 東京 😀\n\ttab', 'Grüße, 東京 😀\n\ttab'], ['', '']],
  },
  { label: 'nvarchar(40)', type: t('nvarchar', 80), expr: 'CONVERT(nvarchar(max), i.[c])', pgType: 'character varying(40)', samples: [['  padded  ', '  padded  ']] },
  { label: 'binary(4)', type: t('binary', 4), expr: 'CONVERT(nvarchar(max), i.[c], 2)', pgType: 'bytea', samples: [['00FF10AB', '\\x00ff10ab']] },
  { label: 'varbinary(max)', type: t('varbinary', -1), expr: 'CONVERT(nvarchar(max), i.[c], 2)', pgType: 'bytea', samples: [['', '\\x'], ['DEADBEEF00', '\\xdeadbeef00']] },
  { label: 'rowversion', type: t('timestamp', 8), expr: 'CONVERT(nvarchar(max), i.[c], 2)', pgType: 'bytea', samples: [['00000000000007D1', '\\x00000000000007d1']] },
];
