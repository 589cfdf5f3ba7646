/**
 * The datasets shipped with RingTrain (under `public/datasets/`), described for both sides: the
 * server serves shards of them, the page lists them and asks for its shard.
 */

/** One split (train or test) of a built-in dataset: its IDX files and sample count. */
export interface BuiltinSplit {
  /** Samples in the split. */
  n: number;
  /** gzip-compressed IDX images file, relative to the dataset's folder. */
  images: string;
  /** gzip-compressed IDX labels file, relative to the dataset's folder. */
  labels: string;
}

/** A built-in image classification dataset stored as IDX files. */
export interface BuiltinDataset {
  /** URL-safe name; also the folder under `public/datasets/`. */
  name: string;
  title: string;
  /** Per-sample shape, channels last. */
  shape: readonly number[];
  classNames: readonly string[];
  train: BuiltinSplit;
  test: BuiltinSplit;
  /** Licence file, relative to the dataset's folder. */
  license: string;
  source: string;
}

/** Fashion-MNIST (Zalando Research, MIT licence), from Debian's `dataset-fashion-mnist`. */
export const FASHION_MNIST: BuiltinDataset = {
  name: 'fashion-mnist',
  title: 'Fashion-MNIST',
  shape: [28, 28, 1],
  classNames: ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'],
  train: { n: 60000, images: 'train-images-idx3-ubyte.gz', labels: 'train-labels-idx1-ubyte.gz' },
  test: { n: 10000, images: 't10k-images-idx3-ubyte.gz', labels: 't10k-labels-idx1-ubyte.gz' },
  license: 'LICENSE',
  source: 'https://github.com/zalandoresearch/fashion-mnist',
};

/** Every built-in dataset, by name. */
export const BUILTIN_DATASETS: Readonly<Record<string, BuiltinDataset>> = { [FASHION_MNIST.name]: FASHION_MNIST };

/** Which split of a dataset. */
export type Split = 'train' | 'test';
