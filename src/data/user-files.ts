/**
 * Files a user picks in the page (a CSV table, or an IDX images file with its labels file), and
 * seeded synthetic sets, turned into {@link LocalData}. Pure data code: the page reads the files'
 * bytes and passes them in.
 */
import { csvToDataset, parseCsv, type CsvToDatasetOptions } from './csv.ts';
import { DataError, type Dataset } from './dataset.ts';
import { gunzip, idxToDataset, parseIdx } from './idx.ts';
import { holdOut, type LocalData } from './local.ts';
import {
  gaussianBlobs,
  linearRegression,
  twoSpirals,
  type BlobsOptions,
  type LinearRegressionOptions,
  type SpiralsOptions,
} from './synthetic.ts';

/** A picked file: its name and bytes. */
export interface PickedFile {
  name: string;
  bytes: Uint8Array;
}

/** What the user gave the page. */
export type UserDataInput =
  /** `label` defaults to the last column of the header; `delimiter` to a tab for `.tsv` files, else a comma. */
  | ({ kind: 'csv'; file: PickedFile } & Omit<CsvToDatasetOptions, 'label'> & { label?: string })
  /** An IDX images file and an IDX labels file, in either order, each optionally gzip-compressed. */
  | { kind: 'idx'; files: PickedFile[] }
  | ({ kind: 'blobs' } & BlobsOptions)
  | ({ kind: 'spirals' } & SpiralsOptions)
  | ({ kind: 'linear' } & LinearRegressionOptions);

/** Largest file the page reads (the whole file is held in the tab's memory). */
export const MAX_USER_FILE_BYTES = 512 * 1024 * 1024;

function checkSize(f: PickedFile): void {
  if (f.bytes.byteLength > MAX_USER_FILE_BYTES) {
    throw new DataError(
      'bad-dims',
      `${f.name}: ${(f.bytes.byteLength / 2 ** 20).toFixed(0)} MiB is over the ${MAX_USER_FILE_BYTES / 2 ** 20} MiB a tab reads; use a smaller file or a sample of it`,
    );
  }
}

/** Prefixes a DataError's message with the file it is about. */
async function about<T>(name: string, f: () => T | Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof DataError) throw new DataError(e.code, `${name}: ${e.message}`);
    throw e;
  }
}

async function idxPair(files: PickedFile[]): Promise<Dataset> {
  if (files.length !== 2) {
    throw new DataError(
      'bad-argument',
      `pick exactly two IDX files (images and labels), got ${files.length}: ${files.map((f) => f.name).join(', ') || 'none'}`,
    );
  }
  const parsed = await Promise.all(
    files.map(async (f) => {
      checkSize(f);
      return { name: f.name, idx: await about(f.name, async () => parseIdx(await gunzip(f.bytes))) };
    }),
  );
  // The labels file is the 1-D one.
  const [a, b] = parsed as [(typeof parsed)[0], (typeof parsed)[0]];
  const [images, labels] = a.idx.dims.length === 1 && b.idx.dims.length > 1 ? [b, a] : [a, b];
  return about(`${images.name} + ${labels.name}`, () => idxToDataset(images.idx, labels.idx));
}

/**
 * Builds the dataset and holds out a seeded test split (see {@link holdOut}). Rejects with a
 * DataError whose message names the file, and for CSV the row and column, of the problem.
 */
export async function loadUserData(input: UserDataInput, seed = 0): Promise<LocalData> {
  switch (input.kind) {
    case 'csv': {
      const { file, kind: _, label, ...opts } = input;
      checkSize(file);
      const text = new TextDecoder().decode(file.bytes);
      const delimiter = opts.delimiter ?? (/\.tsv$/i.test(file.name) ? '\t' : ',');
      const ds = await about(file.name, () =>
        csvToDataset(text, {
          ...opts,
          delimiter,
          label: label || parseCsv(text.slice(0, text.search(/\r|\n|$/)), { delimiter }).header.at(-1)!,
        }),
      );
      return holdOut(ds, file.name, seed);
    }
    case 'idx': {
      const ds = await idxPair(input.files);
      return holdOut(ds, input.files.map((f) => f.name).join(' + '), seed);
    }
    case 'blobs':
      return holdOut(gaussianBlobs(input), `synthetic blobs (n=${input.n}, seed ${input.seed})`, seed);
    case 'spirals':
      return holdOut(twoSpirals(input), `synthetic spirals (n=${input.n}, seed ${input.seed})`, seed);
    case 'linear':
      return holdOut(linearRegression(input), `synthetic linear regression (n=${input.n}, seed ${input.seed})`, seed);
  }
}
