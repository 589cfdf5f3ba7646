/**
 * The dashboard: renders what a peer runtime tells (its event stream) into the page: the phase
 * badge and buttons, the status panel, progress bars, plots, the ring and peers table, the event
 * log, the shard's labels, the room's link, and a finished run's results. It never reaches the
 * network; it imports the runtime's types only.
 */
import QRCode from 'qrcode';
import { labelHistogram, type Dataset } from '../data/dataset.ts';
import type { PeerStats } from '../protocol/index.ts';
import type { ModelResults, Phase, RuntimeEvent, SessionEvent, TrainEvent, TreeEvent } from '../runtime/events.ts';
import { Charts } from './charts.ts';
import { renderPeersTable, renderRing } from './cluster.ts';
import { clockTime } from './locale.ts';
import { renderConfusion, renderSamples, renderTree } from './results.ts';
import { describePrivacy, renderStatus, type PanelState } from './status-panel.ts';

/** Longest event log kept in the page. */
const MAX_LOG = 200;

export interface DashboardOptions {
  /** The room the panel shows before any join. */
  room: string;
  /** `?backend=` of the page's URL, kept in the room's link. */
  backendParam: string | null;
}

export class Dashboard {
  readonly state: PanelState;
  readonly charts: Charts;
  private roomStats = new Map<string, PeerStats>();
  /** This peer's id while it is in a room. */
  private self: string | null = null;

  constructor(
    private readonly doc: Document,
    private readonly o: DashboardOptions,
  ) {
    this.state = { room: o.room, peerId: null, status: 'idle', view: null };
    this.charts = new Charts(this.byId('plots'));
  }

  byId<T extends HTMLElement = HTMLElement>(id: string): T {
    return this.doc.getElementById(id) as T;
  }

  draw(): void {
    renderStatus(this.byId('status-panel'), this.state);
  }

  /** Entries in the event log now. */
  eventLogSize(): number {
    return this.byId('event-log').children.length;
  }

  log(text: string): void {
    const list = this.byId('event-log');
    const li = this.doc.createElement('li');
    li.textContent = `${clockTime(new Date())} ${text}`;
    list.prepend(li);
    while (list.children.length > MAX_LOG) list.lastElementChild!.remove();
  }

  setupError(message: string): void {
    this.byId('setup-error').textContent = message;
  }

  /** The result of an import, a download or a continuation, under the results. */
  showImport(text: string, error: boolean): void {
    const out = this.byId('import-summary');
    out.textContent = text;
    out.classList.toggle('error', error);
  }

  /** Renders one event of the runtime (subscribe this to its stream). */
  readonly handle = (e: RuntimeEvent): void => {
    const s = this.state;
    switch (e.type) {
      case 'phase':
        this.showPhase(e.phase, e.running, e.inRoom);
        break;
      case 'join-failed':
        if (e.status) s.status = e.status;
        s.error = e.error;
        this.draw();
        break;
      case 'joining':
        s.room = e.room;
        s.status = 'connecting';
        delete s.error;
        this.draw();
        break;
      case 'joined':
        s.peerId = e.peerId;
        s.view = e.view;
        s.status = e.status;
        this.self = e.peerId;
        this.byId('join-form').hidden = true;
        this.showShare(e.room, e.secret);
        this.byId<HTMLButtonElement>('start').disabled = false;
        this.log(`joined room ${e.room} as ${e.peerId}`);
        this.drawCluster();
        this.draw();
        break;
      case 'left':
        this.self = null;
        this.byId('join-form').hidden = false;
        break;
      case 'session':
        this.showSession(e.event);
        break;
      case 'train':
        this.showTraining(e.event);
        break;
      case 'trees':
        this.showTrees(e.event);
        break;
      case 'quorum':
        s.training = `waiting for quorum: ${e.have} of ${e.need} peers in the room; open another peer to go on`;
        this.draw();
        break;
      case 'loading': {
        s.loading = { label: `Loading this peer's ${e.split} shard`, loaded: e.loaded, ...(e.total ? { total: e.total } : {}) };
        const bar = this.byId<HTMLProgressElement>('progress-data');
        bar.max = e.total ?? e.loaded;
        bar.value = e.loaded;
        this.draw();
        break;
      }
      case 'loaded':
        delete s.loading;
        this.draw();
        break;
      case 'shard':
        this.drawHistogram(e.data);
        break;
      case 'run-started':
        // Rows that describe the previous run.
        for (const k of ['privacy', 'codec', 'checkpoint'] as const) delete s[k];
        this.charts.reset();
        this.byId('lm-samples').replaceChildren();
        this.setupError('');
        this.setProgress(0, 1, '');
        this.log(`run ${e.id} (${e.job.config.model}) started by ${e.self ? 'this tab' : e.by.slice(0, 6)}`);
        break;
      case 'run-ignored':
        this.log(`run ${e.id} from ${e.by.slice(0, 6)} ignored: run ${e.current} is still going in this tab`);
        break;
      case 'run-finished': {
        const o = e.outcome;
        let text: string;
        if (o.kind === 'train') {
          const r = o.result;
          const score =
            r.spec.kind === 'transformer'
              ? `validation loss ${(r.loss / Math.LN2).toFixed(3)} bits/char (${(r.accuracy * 100).toFixed(1)}% of next characters right)`
              : `test accuracy ${(r.accuracy * 100).toFixed(2)}%`;
          text = `Run ${e.id}: ${score} after ${r.steps} steps (${r.params} parameters, ${r.backend}); weights checksum ${r.checksum}, the same on every peer.`;
        } else {
          const r = o.result;
          const score = r.rmse !== undefined ? `test RMSE ${r.rmse.toPrecision(4)}` : `test accuracy ${(r.accuracy * 100).toFixed(2)}%`;
          text = `Run ${e.id}: ${o.model}, ${score}; model checksum ${r.checksum}, the same on every peer.`;
        }
        this.byId('result-summary').textContent = text;
        this.byId<HTMLButtonElement>('export').disabled = false;
        this.byId<HTMLButtonElement>('download-checkpoint').disabled = o.kind !== 'train';
        this.log(`run ${e.id} finished`);
        break;
      }
      case 'run-failed':
        this.setupError(`Run ${e.id} failed: ${e.message}`);
        this.log(`run ${e.id} failed: ${e.message}`);
        break;
      case 'results':
        this.showResults(e.results);
        break;
      case 'error':
        this.log(`${e.what}: ${e.message}`);
        break;
    }
  };

  private showPhase(p: Phase, running: boolean, inRoom: boolean): void {
    const badge = this.byId('phase');
    badge.textContent = p;
    badge.dataset.phase = p;
    this.byId<HTMLButtonElement>('pause').disabled = !running || p === 'paused';
    this.byId<HTMLButtonElement>('resume').disabled = !running || p !== 'paused';
    this.byId<HTMLButtonElement>('stop').disabled = !running;
    this.byId<HTMLButtonElement>('start').disabled = running || !inRoom;
  }

  private showSession(e: SessionEvent): void {
    if (e.type === 'status') {
      this.state.status = e.status;
      if (e.detail) this.state.detail = e.detail;
    } else if (e.type === 'view') {
      this.state.view = e.view;
      this.log(`view ${e.view.epoch}: ${e.view.members.length} peer(s)`);
      this.drawCluster();
    } else if (e.type === 'room-stats') {
      this.roomStats = new Map(e.peers.map((p) => [p.peerId, p.stats]));
      this.drawCluster();
    } else if (e.type === 'refused') {
      this.setupError(e.message);
    } else if (e.type === 'link-down') {
      this.log(`link to ${e.peer.slice(0, 6)} down: ${e.reason}`);
    }
    this.draw();
  }

  private showTraining(e: TrainEvent): void {
    const s = this.state;
    if (e.type === 'backend') {
      const a = e.report.adapter;
      s.backend = `${e.report.name} (${e.report.reason})${a ? `; GPU adapter: ${[a.vendor, a.architecture, a.description].filter(Boolean).join(' ')}` : ''}`;
    } else if (e.type === 'step') {
      s.training = `step ${e.step}/${e.steps}, loss ${e.loss.toFixed(4)}, ${Math.round(e.samplesPerSec)} samples/s`;
      this.charts.point('loss', e.step, e.loss);
      this.charts.point('throughput', e.step, e.samplesPerSec);
      this.charts.point('time', e.step, e.computeMs, e.readbackMs, e.allreduceMs, e.applyMs);
      this.setProgress(e.step, e.steps, `step ${e.step} of ${e.steps}`);
    } else if (e.type === 'control') {
      s.training = `${e.state} after step ${e.step}`;
      this.log(`room ${e.state} after step ${e.step}`);
    } else if (e.type === 'fault') {
      s.training = `recovering after step ${e.step}: ${e.reason}`;
      this.log(`fault after step ${e.step}: ${e.reason}`);
    } else if (e.type === 'sync') {
      const from = typeof e.source === 'number' ? `rank ${e.source}` : `the ${e.source}`;
      s.training = `at step ${e.step} with ${e.size} peers (state from ${from})`;
      this.log(`recovered: ${e.size} peer(s) at step ${e.step}, state from ${from}`);
    } else if (e.type === 'checkpoint') {
      s.checkpoint = e.error ? `step ${e.step}: ${e.error}` : `step ${e.step} saved on the server (${(e.bytes / 1024).toFixed(0)} KiB)`;
      this.log(e.error ? `checkpoint at step ${e.step} failed: ${e.error}` : `checkpoint saved at step ${e.step}`);
    } else if (e.type === 'privacy') {
      s.privacy = describePrivacy(e);
    } else if (e.type === 'straggler') {
      const who = e.self ? 'this peer' : `rank ${e.rank}`;
      const msg =
        e.state === 'standby'
          ? `${who} is on standby: its steps took ${e.stepMs.toFixed(0)} ms against a deadline of ${e.deadlineMs.toFixed(0)} ms, again and again; it keeps the model current and steps back in when it is fast enough`
          : `${who} is fast enough again and steps back in`;
      if (e.self) s.training = msg;
      this.log(`step ${e.step}: ${msg}`);
    } else if (e.type === 'rounds') {
      this.log(
        `DiLoCo: ${e.localSteps} local steps per round from step ${e.step} (an inner step takes ${e.computeMs.toFixed(0)} ms, the sum ${e.commMs.toFixed(0)} ms)`,
      );
    } else if (e.type === 'codec') {
      s.codec = `auto picked ${e.codec} at step ${e.step}: ${e.reason}`;
      this.log(`compression: ${s.codec}`);
    } else if (e.type === 'rejected') {
      this.log(
        e.self
          ? `step ${e.step}: this peer's gradient was invalid (NaN/Inf or too large) and was left out`
          : `step ${e.step}: left out the invalid gradients of rank(s) ${e.ranks.join(', ')}`,
      );
    } else if (e.type === 'eval') {
      if (e.bitsPerChar !== undefined) {
        s.accuracy = `validation loss ${e.bitsPerChar.toFixed(3)} bits/char, ${(e.accuracy * 100).toFixed(1)}% of next characters right on ${e.count} test windows (step ${e.step})`;
        this.charts.point('bits', e.step, e.bitsPerChar);
      } else s.accuracy = `${(e.accuracy * 100).toFixed(2)}% on ${e.count} test samples (step ${e.step})`;
      this.charts.point('accuracy', e.step, e.accuracy);
    } else if (e.type === 'sample') {
      this.showSample(e.step, e.prompt, e.text);
    } else return;
    this.draw();
  }

  private showTrees(e: TreeEvent): void {
    if (e.type === 'fault') {
      this.log(`fault: ${e.reason}`);
    } else if (e.type === 'sync') {
      this.log(`recovered: ${e.size} peer(s) go on from ${e.rounds} round(s) of rank ${e.source}`);
    } else if (e.type === 'round') {
      this.state.training = `tree round ${e.round}/${e.rounds} (${(e.floatsSummed * 4e-6).toFixed(1)} MB of histograms summed)`;
      this.setProgress(e.round, e.rounds, `round ${e.round} of ${e.rounds}`);
    } else if (e.type === 'eval') {
      this.state.accuracy =
        e.rmse !== undefined
          ? `RMSE ${e.rmse.toPrecision(4)} on ${e.count} test samples`
          : `${(e.accuracy * 100).toFixed(2)}% on ${e.count} test samples`;
    }
    this.draw();
  }

  private showResults(r: ModelResults): void {
    if (r.tree) {
      const { tree, featureNames, classNames } = r.tree;
      const top = (v: number[]): number => v.indexOf(Math.max(...v));
      renderTree(
        this.byId('tree-view'),
        tree,
        (f) => featureNames?.[f] ?? `pixel ${f}`,
        (v) => (v.length > 1 ? (classNames?.[top(v)] ?? String(top(v))) : v[0]!.toPrecision(3)),
      );
    }
    if (r.confusion) renderConfusion(this.byId('confusion'), r.confusion.matrix, r.confusion.classNames);
    if (r.samples) renderSamples(this.byId('samples'), r.samples);
  }

  /** A language model's text at `step`, newest first (the last 6 kept). */
  private showSample(step: number, prompt: string, text: string): void {
    const list = this.byId('lm-samples');
    const item = this.doc.createElement('li');
    const at = this.doc.createElement('span');
    at.className = 'at';
    at.textContent = `step ${step}: `;
    const given = this.doc.createElement('b');
    given.textContent = prompt;
    item.append(at, given, text);
    list.prepend(item);
    while (list.children.length > 6) list.lastElementChild!.remove();
    this.byId('lm-samples-box').hidden = false;
  }

  private setProgress(done: number, total: number, text: string): void {
    const bar = this.byId<HTMLProgressElement>('progress-run');
    bar.max = total;
    bar.value = done;
    this.byId('progress-run-text').textContent = text;
  }

  private drawCluster(): void {
    const members = this.state.view?.members.map((m) => m.peerId) ?? [];
    renderRing(this.byId('ring'), members, this.self, this.roomStats);
    renderPeersTable(this.byId('peers-table'), members, this.self, this.roomStats);
  }

  private drawHistogram(ds: Dataset): void {
    const root = this.byId('label-histogram');
    if (ds.numClasses === 0) {
      root.textContent = `Shard: ${ds.n} training samples (regression)`;
      return;
    }
    const h = labelHistogram(ds);
    const max = Math.max(1, ...h);
    const bars = this.doc.createElement('div');
    bars.className = 'hist';
    bars.setAttribute('role', 'img');
    bars.setAttribute('aria-label', `labels in this shard: ${Array.from(h, (c, k) => `${ds.classNames?.[k] ?? k}: ${c}`).join(', ')}`);
    h.forEach((c, k) => {
      const bar = this.doc.createElement('span');
      bar.style.height = `${(100 * c) / max}%`;
      bar.title = `${ds.classNames?.[k] ?? k}: ${c}`;
      bars.append(bar);
    });
    const caption = this.doc.createElement('p');
    caption.textContent = `Shard: ${ds.n} training samples; labels:`;
    root.replaceChildren(caption, bars);
  }

  /** The room's link (with its secret in the fragment for a private room) as text, anchor and QR code. */
  private showShare(room: string, secret: string | undefined): void {
    const fragment = secret ? `#k=${secret}` : '';
    const link = `${location.origin}${location.pathname}?room=${encodeURIComponent(room)}${fragment}`;
    const backend = this.o.backendParam;
    history.replaceState(null, '', `?room=${encodeURIComponent(room)}${backend !== null ? `&backend=${backend}` : ''}${fragment}`);
    const a = this.byId<HTMLAnchorElement>('share-link');
    a.href = link;
    a.textContent = link;
    this.byId('share').hidden = false;
    void QRCode.toCanvas(this.byId<HTMLCanvasElement>('share-qr'), link, { width: 148, margin: 1 }).catch(() => undefined);
  }
}
