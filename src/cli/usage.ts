/**
 * The CLI's usage texts. The lists of datasets, models, optimizers, algorithms, codecs and
 * aggregation rules come from the catalogs (protocol/catalogs.ts), with each name's description.
 */
import {
  AGGREGATION_RULES,
  ALGORITHMS,
  CODECS,
  DATASETS,
  MODELS,
  NO_CODEC,
  OPTIMIZERS,
  SCHEDULES,
  PLAIN_SUM,
  TREE_MODELS,
  type DatasetName,
} from '../protocol/catalogs.ts';
import { choicesOf, listed, type Catalog } from '../protocol/registry.ts';
import { MODEL_DEFAULTS, SETUP_DEFAULTS } from '../training/job.ts';

/** The datasets `ringtrain train` offers: the built-in ones and the synthetic sets (not the tab's own data). */
export const CLI_DATASETS = (Object.keys(DATASETS) as DatasetName[]).filter((d) => DATASETS[d].source !== 'local');

export const USAGE = `ringtrain <command> [options]

Commands:
  train   Start a server, launch N headless peers (Chromium tabs or Node processes), train, print the test accuracy, write the model.
  serve   Run the server (app, signaling, coordinator on one port) on the built assets.
  peer    Join an existing room, even on another machine, as K headless volunteer peers (tabs, or Node with --node).

Run "ringtrain <command> --help" for a command's options.`;

const values = (c: Catalog): string[] => choicesOf(c).map((ch) => ch.value);
const dflt = (field: string): string => ` (default ${SETUP_DEFAULTS[field]})`;
const gbdt = MODEL_DEFAULTS['gbdt']!;

/** One line per name: the name, then its description. */
function described(title: string, entries: [string, string][]): string {
  const width = Math.max(...entries.map(([n]) => n.length)) + 2;
  return `${title}:\n${entries.map(([n, d]) => `  ${n.padEnd(width)}${d}`).join('\n')}`;
}
const entriesOf = (c: Catalog, only: readonly string[] = Object.keys(c)): [string, string][] => only.map((n) => [n, c[n]!.description]);

export const TRAIN_USAGE = `ringtrain train [options]

  --peers N          headless peers (default 2; up to 32)
  --runtime R        browser (headless Chromium tabs) or node (Node processes: WebRTC from node-datachannel,
                     WebGPU from Dawn where a Vulkan driver is found, else wasm or cpu) (default browser)
  --dataset D        ${listed(CLI_DATASETS)} (default ${SETUP_DEFAULTS['dataset']}; moby-dick for the transformer)
  --model M          ${listed([...Object.keys(MODELS), ...Object.keys(TREE_MODELS)])}${dflt('model')}
  --epochs E         passes over the training set${dflt('epochs')}
  --algorithm A      ${listed(Object.keys(ALGORITHMS))}${dflt('algorithm')}
  --optimizer O      ${listed(Object.keys(OPTIMIZERS))}${dflt('optimizer')}; the SVM uses pegasos
  --lr X             learning rate${dflt('lr')}
  --schedule S       ${listed(Object.keys(SCHEDULES))}: the lr over the run (step: x0.1 at each third; default: the model's, cosine but for the SVM)
  --warmup-steps N   linear warm-up of the lr over the first N steps${dflt('warmupSteps')}
  --weight-decay X   decoupled weight decay (Adam becomes AdamW)${dflt('weightDecay')}
  --clip-norm X      clip the mean gradient to this global norm (0: off)${dflt('clipNorm')}
  --label-smoothing E  targets (1 - E) one-hot + E/K for the cross-entropy${dflt('labelSmoothing')}
  --augment A        images: none, shift (up to 2 pixels) or shift-flip (and mirroring), seeded per sample${dflt('augment')}
  --lambda X         the SVM's L2 strength (Pegasos: no learning rate) (default ${MODEL_DEFAULTS['svm']!['lambda']})
  --kernel-features F, --kernel-gamma G   the SVM's RBF kernel exp(-G |x - y|²) by F random Fourier features
                     (default ${SETUP_DEFAULTS['kernelFeatures']}: the linear SVM; G ${SETUP_DEFAULTS['kernelGamma']})
  --lm-layers L, --lm-width W, --lm-heads H   the transformer's blocks, d_model and attention heads
                     (H must divide W) (${SETUP_DEFAULTS['lmLayers']}, ${SETUP_DEFAULTS['lmWidth']}, ${SETUP_DEFAULTS['lmHeads']})
  --batch B          global batch${dflt('batch')}
  --local-steps H    fedavg and diloco: local steps per round; diloco also takes auto${dflt('localSteps')}
  --outer-lr X, --outer-momentum M   diloco: the outer Nesterov step (${SETUP_DEFAULTS['outerLr']}, ${SETUP_DEFAULTS['outerMomentum']})
  --partition P      iid, label-shards or dirichlet${dflt('partition')}
  --alpha X          Dirichlet concentration${dflt('alpha')}
  --depth D, --bins B   trees: depth and bins per feature (tree: ${SETUP_DEFAULTS['depth']}, ${SETUP_DEFAULTS['bins']}; gbdt: ${gbdt['depth']}, ${gbdt['bins']})
  --rounds R, --col-sample S   gbdt: boosting rounds, and the share of features each round may split on,
                     drawn by a seed all peers share (${gbdt['rounds']}, ${gbdt['colSample']})
  --compression C    ${listed([NO_CODEC.value, ...values(CODECS)])}${dflt('compression')}
  --aggregation A    ${listed([PLAIN_SUM.value, ...values(AGGREGATION_RULES)])} (robust to untrusted peers)${dflt('aggregation')}
  --backend B        webgpu, webgl, wasm or cpu (default: each peer probes and picks the fastest)
  --out DIR          where to write the model (default ./ringtrain-model)
  --help

${described('Datasets', entriesOf(DATASETS, CLI_DATASETS))}

${described('Models', [...entriesOf(MODELS), ...entriesOf(TREE_MODELS)])}

${described('Algorithms', entriesOf(ALGORITHMS))}

${described('Optimizers', entriesOf(OPTIMIZERS))}

${described('Compression', [[NO_CODEC.value, 'gradients in float32'], ...entriesOf(CODECS)])}

${described('Aggregation', [[PLAIN_SUM.value, 'the sum on the ring'], ...entriesOf(AGGREGATION_RULES)])}

The browser: $RINGTRAIN_CHROMIUM (a path, or "npm" for the bundled one), else /usr/bin/chromium,
else the npm package @sparticuz/chromium. Node peers need no browser.`;

export const PEER_USAGE = `ringtrain peer <room-url> [options]

  <room-url>         the room's link, e.g. https://host:8443/?room=lab
  --count K          peers to open (default 1)
  --node             Node processes instead of browser tabs: no browser needed, WebGPU through Dawn on
                     this machine's Vulkan driver (a GPU server's), else wasm or cpu
  --backend B        webgpu, webgl, wasm or cpu (default: probe; Node peers have no webgl)
  --help

The peers stay in the room and train every run started from any dashboard, until Ctrl-C.`;
