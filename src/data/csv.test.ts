import { describe, expect, it } from 'vitest';
import { csvToDataset, parseCsv, parseNumber } from './csv.ts';
import type { DataError } from './dataset.ts';
import { dataError } from '../test/helpers.ts';

describe('parseCsv', () => {
  it('handles RFC 4180 quoting: delimiters, doubled quotes and line breaks inside quotes', () => {
    const t = parseCsv('a,b,c\r\n"x, y","say ""hi""","two\nlines"\n1,,""\n');
    expect(t.header).toEqual(['a', 'b', 'c']);
    expect(t.rows).toEqual([
      ['x, y', 'say "hi"', 'two\nlines'],
      ['1', '', ''],
    ]);
    expect(t.rowNumbers).toEqual([2, 4]);
  });

  it('numbers rows by the line they start on, counting empty lines and breaks in quotes', () => {
    const t = parseCsv('\na,b\n\n"1\n2",3\n\n\n4,5');
    expect(t.headerRow).toBe(2);
    expect(t.rowNumbers).toEqual([4, 8]);
    expect(t.rows).toEqual([
      ['1\n2', '3'],
      ['4', '5'],
    ]);
  });

  it('supports another delimiter, CR line ends and a BOM', () => {
    const t = parseCsv('\ufeffa;b\r1;"2;3"\r', { delimiter: ';' });
    expect(t.header).toEqual(['a', 'b']);
    expect(t.rows).toEqual([['1', '2;3']]);
  });

  it.each<[string, string, DataError['code'], string]>([
    ['an empty file', '', 'empty', 'parseCsv: the file is empty; a CSV file needs a header row of column names'],
    ['only empty lines', '\n\r\n', 'empty', 'parseCsv: the file is empty; a CSV file needs a header row of column names'],
    [
      'a ragged row',
      'a,b,c\n1,2,3\n4,5\n',
      'ragged',
      'row 3: 2 fields, but the header has 3 columns; every row needs one value per column (quote values that contain ",")',
    ],
    [
      'a long row',
      'a,b\n1,2,3\n',
      'ragged',
      'row 2: 3 fields, but the header has 2 columns; every row needs one value per column (quote values that contain ",")',
    ],
    ['an open quote', 'a,b\n1,"2\n3,4\n', 'bad-format', 'row 2, column 2: a quoted field is never closed; add the closing "'],
    [
      'text after a closing quote',
      'a,b\n"1"x,2\n',
      'bad-format',
      'row 2, column 1: unexpected "x" after a closing quote; quote the whole field and double inner quotes ("")',
    ],
    ['a duplicate column', 'a,b,a\n1,2,3\n', 'bad-value', 'row 1: column name "a" appears twice; column names must be unique'],
    ['an unnamed column', 'a,,c\n1,2,3\n', 'bad-value', 'row 1: column 2 has an empty name; name every column in the header'],
  ])('rejects %s', (_, text, code, message) => {
    const e = dataError(() => parseCsv(text));
    expect(e.code).toBe(code);
    expect(e.message).toBe(message);
  });

  it('rejects a delimiter that cannot work', () => {
    expect(dataError(() => parseCsv('a', { delimiter: '"' })).code).toBe('bad-argument');
    expect(dataError(() => parseCsv('a', { delimiter: ';;' })).code).toBe('bad-argument');
  });
});

describe('parseNumber', () => {
  it('accepts decimal numbers only', () => {
    expect(['1', '-2.5', ' +3e2 ', '.5', '7.'].map(parseNumber)).toEqual([1, -2.5, 300, 0.5, 7]);
    expect(['', ' ', 'abc', '0x10', 'Infinity', 'NaN', '1,5', '1e'].map(parseNumber)).toEqual(new Array(8).fill(null));
  });
});

describe('csvToDataset', () => {
  const TEXT = ['age,colour,size,label', '30,red,1.5,yes', '41,blue,2,no', '', '25,"red",3,yes', '19,green,4,maybe'].join('\n');

  it('keeps numeric columns, one-hot encodes text columns and maps labels to sorted classes', () => {
    const ds = csvToDataset(TEXT, { label: 'label', task: 'classification' });
    expect(ds.n).toBe(4);
    expect(ds.shape).toEqual([5]);
    expect(ds.featureNames).toEqual(['age', 'colour=blue', 'colour=green', 'colour=red', 'size']);
    expect(Array.from(ds.x)).toEqual([30, 0, 0, 1, 1.5, 41, 1, 0, 0, 2, 25, 0, 0, 1, 3, 19, 0, 1, 0, 4]);
    expect(ds.classNames).toEqual(['maybe', 'no', 'yes']);
    expect(Array.from(ds.y)).toEqual([2, 1, 2, 0]);
    expect(ds.numClasses).toBe(3);
    expect(ds.targets).toBeUndefined();
  });

  it('sorts numeric labels numerically and one-hot encodes forced categorical columns', () => {
    const ds = csvToDataset('zip,y\n10,10\n9,2\n10,9\n', { label: 'y', task: 'classification', categorical: ['zip'] });
    expect(ds.classNames).toEqual(['2', '9', '10']);
    expect(Array.from(ds.y)).toEqual([2, 0, 1]);
    expect(ds.featureNames).toEqual(['zip=9', 'zip=10']);
    expect(Array.from(ds.x)).toEqual([0, 1, 1, 0, 0, 1]);
  });

  it('builds a regression dataset with targets, drops excluded columns, and honours the delimiter', () => {
    const ds = csvToDataset('id;x;t\na1;1;0.5\na2;2;-1e1\n', { label: 't', task: 'regression', exclude: ['id'], delimiter: ';' });
    expect(ds.numClasses).toBe(0);
    expect(Array.from(ds.targets!)).toEqual([0.5, -10]);
    expect(Array.from(ds.y)).toEqual([0, 0]);
    expect(ds.featureNames).toEqual(['x']);
  });

  it.each<[string, string, Parameters<typeof csvToDataset>[1], DataError['code'], string]>([
    [
      'a typo in a numeric column',
      `id,age,label\n${Array.from({ length: 20 }, (_, i) => `${i},${i === 15 ? 'abc' : 20 + i},a`).join('\n')}`,
      { label: 'label', task: 'classification' },
      'bad-value',
      'row 17, column "age": "abc" is not a number; fix the value, or list "age" in categorical to one-hot encode the column',
    ],
    [
      'text in a column forced numeric',
      'c,label\nx,1\ny,2\n',
      { label: 'label', task: 'classification', numeric: ['c'] },
      'bad-value',
      'row 2, column "c": "x" is not a number; fix the value (the column is listed in numeric)',
    ],
    [
      'an empty numeric cell',
      'a,b,label\n1,2,x\n3,,y\n',
      { label: 'label', task: 'classification' },
      'bad-value',
      'row 3, column "b": the value is empty; fill it in or drop the row',
    ],
    [
      'an empty label',
      'a,label\n1,x\n2, \n',
      { label: 'label', task: 'classification' },
      'bad-value',
      'row 3, column "label": the label is empty; every row needs a label',
    ],
    [
      'a text regression target',
      'a,t\n1,2\n2,high\n',
      { label: 't', task: 'regression' },
      'bad-value',
      'row 3, column "t": "high" is not a number; a regression target must be numeric (or use task "classification")',
    ],
    [
      'a missing label column',
      'a,b\n1,2\n',
      { label: 'class', task: 'classification' },
      'missing-column',
      'csvToDataset: label column "class" is not in the header; the columns are "a", "b"',
    ],
    [
      'a missing categorical column',
      'a,b\n1,2\n',
      { label: 'b', task: 'classification', categorical: ['c'] },
      'missing-column',
      'csvToDataset: categorical column "c" is not in the header; the columns are "a", "b"',
    ],
    [
      'a header without rows',
      'a,b\n\n',
      { label: 'b', task: 'classification' },
      'empty',
      'csvToDataset: the file has a header (row 1) but no data rows',
    ],
    [
      'an empty file',
      '',
      { label: 'b', task: 'classification' },
      'empty',
      'parseCsv: the file is empty; a CSV file needs a header row of column names',
    ],
    [
      'only a label column',
      'b\n1\n',
      { label: 'b', task: 'classification' },
      'empty',
      'csvToDataset: no feature columns are left besides the label "b"',
    ],
    [
      'a ragged row',
      'a,b\n1,2\n3\n',
      { label: 'b', task: 'classification' },
      'ragged',
      'row 3: 1 field, but the header has 2 columns; every row needs one value per column (quote values that contain ",")',
    ],
    [
      'too many categories',
      `name,label\n${Array.from({ length: 5 }, (_, i) => `n${i},a`).join('\n')}`,
      { label: 'label', task: 'classification', maxCategories: 4 },
      'bad-dims',
      'csvToDataset: column "name" has 5 distinct values, more than maxCategories (4); exclude it (an id or free text?) or raise maxCategories',
    ],
  ])('rejects %s, naming the place', (_, text, opts, code, message) => {
    const e = dataError(() => csvToDataset(text, opts));
    expect(e.code).toBe(code);
    expect(e.message).toBe(message);
  });
});
