/**
 * CSV (RFC 4180) parsing and conversion to a {@link Dataset}.
 *
 * Rows are numbered as a text editor numbers lines: row 1 is the first line of the file (the
 * header), and a record is named by the line it starts on, so empty lines and line breaks inside
 * quoted fields are counted. Error messages name the row and the column, e.g.
 * `row 17, column "age": "abc" is not a number`.
 */
import { DataError, checkDataset, type Dataset } from './dataset.ts';

/** Options of {@link parseCsv}. */
export interface CsvParseOptions {
  /** Field separator, one character other than a quote or a line break. Default `,`. */
  delimiter?: string;
}

/** A parsed CSV file: the header and the records, each with the row (line) it starts on. */
export interface CsvTable {
  header: string[];
  rows: string[][];
  /** `rowNumbers[i]` is the 1-based line on which `rows[i]` starts. */
  rowNumbers: number[];
  /** 1-based line of the header. */
  headerRow: number;
}

function checkDelimiter(delimiter: string, fn: string): void {
  if (delimiter.length !== 1 || delimiter === '"' || delimiter === '\n' || delimiter === '\r') {
    throw new DataError(
      'bad-argument',
      `${fn}: delimiter must be one character other than a quote or a line break, got ${JSON.stringify(delimiter)}`,
    );
  }
}

/**
 * Splits CSV text into a header and records. Fields may be quoted with `"`; inside quotes a
 * delimiter or line break is literal and `""` is one quote. Lines end with LF, CRLF or CR. Empty
 * lines (no characters at all) are skipped; a leading UTF-8 BOM is dropped.
 *
 * Throws DataError: 'empty' (no header), 'bad-format' (a quote left open, or text after a closing
 * quote), 'ragged' (a record whose field count differs from the header's), 'bad-value' (an empty
 * or duplicate column name).
 */
export function parseCsv(text: string, opts: CsvParseOptions = {}): CsvTable {
  const delim = opts.delimiter ?? ',';
  checkDelimiter(delim, 'parseCsv');
  const s = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const records: string[][] = [];
  const starts: number[] = [];
  let line = 1;
  let i = 0;
  const len = s.length;
  while (i < len) {
    const c0 = s[i]!;
    // An empty line: skip it.
    if (c0 === '\n' || c0 === '\r') {
      i += c0 === '\r' && s[i + 1] === '\n' ? 2 : 1;
      line++;
      continue;
    }
    const startLine = line;
    const fields: string[] = [];
    for (;;) {
      // One field starting at i.
      let field: string;
      if (s[i] === '"') {
        const openLine = line;
        let out = '';
        let j = i + 1;
        for (;;) {
          const q = s.indexOf('"', j);
          if (q < 0) {
            throw new DataError(
              'bad-format',
              `row ${openLine}, column ${fields.length + 1}: a quoted field is never closed; add the closing "`,
            );
          }
          const chunk = s.slice(j, q);
          for (let k = 0; k < chunk.length; k++) {
            const ch = chunk[k];
            if (ch === '\n' || (ch === '\r' && chunk[k + 1] !== '\n')) line++;
          }
          out += chunk;
          if (s[q + 1] === '"') {
            out += '"';
            j = q + 2;
          } else {
            i = q + 1;
            break;
          }
        }
        field = out;
        const next = s[i];
        if (i < len && next !== delim && next !== '\n' && next !== '\r') {
          throw new DataError(
            'bad-format',
            `row ${line}, column ${fields.length + 1}: unexpected ${JSON.stringify(next)} after a closing quote; quote the whole field and double inner quotes ("")`,
          );
        }
      } else {
        let j = i;
        while (j < len) {
          const ch = s[j];
          if (ch === delim || ch === '\n' || ch === '\r') break;
          j++;
        }
        field = s.slice(i, j);
        i = j;
      }
      fields.push(field);
      if (i >= len) break;
      const ch = s[i]!;
      if (ch === delim) {
        i++;
        continue;
      }
      // End of the record.
      i += ch === '\r' && s[i + 1] === '\n' ? 2 : 1;
      line++;
      break;
    }
    records.push(fields);
    starts.push(startLine);
  }
  const header = records[0];
  if (!header) throw new DataError('empty', 'parseCsv: the file is empty; a CSV file needs a header row of column names');
  const headerRow = starts[0]!;
  const seen = new Set<string>();
  header.forEach((name, k) => {
    if (name.trim() === '')
      throw new DataError('bad-value', `row ${headerRow}: column ${k + 1} has an empty name; name every column in the header`);
    if (seen.has(name))
      throw new DataError('bad-value', `row ${headerRow}: column name "${name}" appears twice; column names must be unique`);
    seen.add(name);
  });
  const rows = records.slice(1);
  const rowNumbers = starts.slice(1);
  rows.forEach((r, k) => {
    if (r.length !== header.length) {
      throw new DataError(
        'ragged',
        `row ${rowNumbers[k]}: ${r.length} field${r.length === 1 ? '' : 's'}, but the header has ${header.length} columns; every row needs one value per column (quote values that contain "${delim}")`,
      );
    }
  });
  return { header, rows, rowNumbers, headerRow };
}

/** Options of {@link csvToDataset}. */
export interface CsvToDatasetOptions extends CsvParseOptions {
  /** The column to predict. */
  label: string;
  /** Classification maps the label's distinct values to class indices; regression needs numbers. */
  task: 'classification' | 'regression';
  /** Columns to one-hot encode even if all their values are numbers (e.g. codes, zip codes). */
  categorical?: readonly string[];
  /** Columns to treat as numeric whatever they hold: a value that is not a number is an error. */
  numeric?: readonly string[];
  /** Columns to drop (ids, free text). */
  exclude?: readonly string[];
  /** Most distinct values a categorical column may have before it is refused. Default 256. */
  maxCategories?: number;
}

const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/** Parses a decimal number (surrounding spaces allowed), or returns null. No hex, no Infinity/NaN. */
export function parseNumber(s: string): number | null {
  const t = s.trim();
  return NUMBER.test(t) ? Number(t) : null;
}

/** Sorts distinct values: numerically when all are numbers, else by UTF-16 code units. */
function sortedDistinct(values: Iterable<string>): string[] {
  const d = [...new Set(values)];
  if (d.every((v) => parseNumber(v) !== null)) return d.sort((a, b) => parseNumber(a)! - parseNumber(b)! || (a < b ? -1 : a > b ? 1 : 0));
  return d.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

type Column = { name: string; index: number; kind: 'numeric' } | { name: string; index: number; kind: 'categorical'; values: string[] };

/**
 * Builds a Dataset from CSV text with a header row.
 *
 * - The `label` column becomes `y` (classification: its sorted distinct values are the classes, in
 *   `classNames`) or `targets` (regression: every value must be a number).
 * - Every other column (not in `exclude`) is a feature. A column whose values are all numbers is
 *   numeric and used as it is. A column is categorical, and one-hot encoded over its sorted distinct
 *   values (feature names `column=value`), when it is listed in `categorical` or when most of its
 *   values are not numbers. A column whose values are mostly numbers with a few that are not (or
 *   one listed in `numeric`) is taken as numeric with typos, and the first bad value is reported.
 * - Empty lines are ignored. An empty cell in a numeric column is an error (fill it or drop the
 *   row); in a categorical column it is the category "".
 *
 * Result: `shape` is `[features]`, `featureNames` names each feature.
 *
 * Throws DataError (see {@link parseCsv} for the syntax errors): 'missing-column' for a `label`,
 * `categorical` or `exclude` name not in the header; 'empty' for no data rows or no feature
 * column; 'bad-value' naming the row and column of a bad value; 'bad-dims' when a categorical
 * column exceeds `maxCategories`.
 */
export function csvToDataset(text: string, opts: CsvToDatasetOptions): Dataset {
  const table = parseCsv(text, opts);
  const { header, rows, rowNumbers, headerRow } = table;
  const col = (name: string, what: string): number => {
    const k = header.indexOf(name);
    if (k < 0) {
      throw new DataError(
        'missing-column',
        `csvToDataset: ${what} column "${name}" is not in the header; the columns are ${header.map((h) => `"${h}"`).join(', ')}`,
      );
    }
    return k;
  };
  const labelIndex = col(opts.label, 'label');
  const forced = new Set((opts.categorical ?? []).map((c) => col(c, 'categorical')));
  const excluded = new Set((opts.exclude ?? []).map((c) => col(c, 'excluded')));
  const forcedNumeric = new Set((opts.numeric ?? []).map((c) => col(c, 'numeric')));
  for (const k of forced) {
    if (forcedNumeric.has(k))
      throw new DataError('bad-argument', `csvToDataset: column "${header[k]}" cannot be both categorical and numeric`);
  }
  if (excluded.has(labelIndex))
    throw new DataError('bad-argument', `csvToDataset: the label column "${opts.label}" cannot also be excluded`);
  const maxCategories = opts.maxCategories ?? 256;
  if (rows.length === 0) {
    throw new DataError('empty', `csvToDataset: the file has a header (row ${headerRow}) but no data rows`);
  }
  const n = rows.length;
  const where = (r: number, k: number): string => `row ${rowNumbers[r]}, column "${header[k]}"`;

  // Decide each feature column's kind.
  const columns: Column[] = [];
  for (let k = 0; k < header.length; k++) {
    if (k === labelIndex || excluded.has(k)) continue;
    const name = header[k]!;
    let numeric = 0;
    let firstBad = -1;
    for (let r = 0; r < n; r++) {
      const v = rows[r]![k]!;
      if (parseNumber(v) !== null) numeric++;
      else if (v.trim() !== '' && firstBad < 0) firstBad = r;
    }
    let categorical = forced.has(k);
    if (!categorical && firstBad >= 0) {
      if (numeric * 2 > n || forcedNumeric.has(k)) {
        throw new DataError(
          'bad-value',
          `${where(firstBad, k)}: ${JSON.stringify(rows[firstBad]![k])} is not a number; ` +
            (forcedNumeric.has(k)
              ? `fix the value (the column is listed in numeric)`
              : `fix the value, or list "${name}" in categorical to one-hot encode the column`),
        );
      }
      categorical = true;
    }
    if (categorical) {
      const values = sortedDistinct(rows.map((row) => row[k]!));
      if (values.length > maxCategories) {
        throw new DataError(
          'bad-dims',
          `csvToDataset: column "${name}" has ${values.length} distinct values, more than maxCategories (${maxCategories}); exclude it (an id or free text?) or raise maxCategories`,
        );
      }
      columns.push({ name, index: k, kind: 'categorical', values });
    } else {
      columns.push({ name, index: k, kind: 'numeric' });
    }
  }
  if (columns.length === 0) throw new DataError('empty', `csvToDataset: no feature columns are left besides the label "${opts.label}"`);

  const featureNames: string[] = [];
  const offsets: number[] = [];
  for (const c of columns) {
    offsets.push(featureNames.length);
    if (c.kind === 'numeric') featureNames.push(c.name);
    else for (const v of c.values) featureNames.push(`${c.name}=${v}`);
  }
  const d = featureNames.length;
  const x = new Float32Array(n * d);
  for (let ci = 0; ci < columns.length; ci++) {
    const c = columns[ci]!;
    const off = offsets[ci]!;
    if (c.kind === 'numeric') {
      for (let r = 0; r < n; r++) {
        const v = rows[r]![c.index]!;
        const num = parseNumber(v);
        if (num === null) {
          throw new DataError('bad-value', `${where(r, c.index)}: the value is empty; fill it in or drop the row`);
        }
        x[r * d + off] = num;
      }
    } else {
      const pos = new Map(c.values.map((v, j) => [v, j]));
      for (let r = 0; r < n; r++) x[r * d + off + pos.get(rows[r]![c.index]!)!] = 1;
    }
  }

  const y = new Int32Array(n);
  let ds: Dataset;
  if (opts.task === 'classification') {
    for (let r = 0; r < n; r++) {
      if (rows[r]![labelIndex]!.trim() === '') {
        throw new DataError('bad-value', `${where(r, labelIndex)}: the label is empty; every row needs a label`);
      }
    }
    const classNames = sortedDistinct(rows.map((row) => row[labelIndex]!));
    const pos = new Map(classNames.map((v, j) => [v, j]));
    for (let r = 0; r < n; r++) y[r] = pos.get(rows[r]![labelIndex]!)!;
    ds = { n, shape: [d], x, y, numClasses: classNames.length, classNames, featureNames };
  } else {
    const targets = new Float32Array(n);
    for (let r = 0; r < n; r++) {
      const v = rows[r]![labelIndex]!;
      const num = parseNumber(v);
      if (num === null) {
        throw new DataError(
          'bad-value',
          v.trim() === ''
            ? `${where(r, labelIndex)}: the target is empty; every row needs a numeric target`
            : `${where(r, labelIndex)}: ${JSON.stringify(v)} is not a number; a regression target must be numeric (or use task "classification")`,
        );
      }
      targets[r] = num;
    }
    ds = { n, shape: [d], x, y, numClasses: 0, targets, featureNames };
  }
  const bad = checkDataset(ds);
  if (bad) throw bad;
  return ds;
}
