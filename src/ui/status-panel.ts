import type { View } from '../core/membership/view.ts';

/** What the panel shows; the composition root fills it from session events. */
export interface PanelState {
  room: string;
  peerId: string | null;
  status: string;
  detail?: string;
  view: View | null;
  error?: string;
  /** tfjs backend in use and why. */
  backend?: string;
  /** Latest training step summary. */
  training?: string;
  /** Latest checkpoint saved (or why not). */
  checkpoint?: string;
  /** DP-SGD: privacy spent so far. */
  privacy?: string;
  /** compression `auto`: what it picked and why. */
  codec?: string;
  /** Latest test accuracy. */
  accuracy?: string;
  /** A download in progress (bytes). */
  loading?: { label: string; loaded: number; total?: number };
}

/**
 * What a privacy report means, in words, for the page and the CLI. `neighbour` is the ε against a
 * ring neighbour of this peer (ml/dp.ts; absent when secure aggregation hides each contribution).
 */
export function describePrivacy(e: { step: number; epsilon: number; neighbourEpsilon?: number; delta: number }): string {
  const model = `ε = ${e.epsilon.toFixed(3)} for δ = ${e.delta} after ${e.step} steps (DP-SGD) against whoever sees the model or the step sums`;
  return e.neighbourEpsilon === undefined
    ? `${model}; ring neighbours see only masked contributions (secure aggregation)`
    : `${model}; ε = ${e.neighbourEpsilon.toFixed(3)} against this peer's ring neighbour, which sees its contribution with only its share of the noise (turn on secure aggregation to close the gap)`;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, text?: string, attrs: Record<string, string> = {}): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

/** Renders room, status, rank, epoch, ring neighbours and training progress into `root`. DOM only. */
export function renderStatus(root: HTMLElement, s: PanelState): void {
  const dl = el('dl');
  const row = (k: string, v: string | HTMLElement): void => {
    dl.append(el('dt', k));
    const dd = el('dd');
    dd.append(v);
    dl.append(dd);
  };
  const status = el('span', s.status, { class: 'status', 'data-status': s.status, 'data-testid': 'status' });
  row('Room', s.room);
  row('Peer', s.peerId ?? '—');
  row('Status', status);
  if (s.detail) row('Detail', s.detail);
  const v = s.view;
  const rank = v?.members.findIndex((m) => m.peerId === s.peerId) ?? -1;
  if (v && rank >= 0) {
    const n = v.members.length;
    row('View epoch', String(v.epoch));
    row('Rank', `${rank} of ${n}`);
    row('Receives from', v.members[(rank - 1 + n) % n]!.peerId);
    row('Sends to', v.members[(rank + 1) % n]!.peerId);
  }
  if (s.backend) row('Backend', s.backend);
  if (s.training) row('Training', s.training);
  if (s.accuracy) row('Test accuracy', s.accuracy);
  if (s.checkpoint) row('Checkpoint', s.checkpoint);
  if (s.privacy) row('Privacy spent', s.privacy);
  if (s.codec) row('Compression', s.codec);
  const children: HTMLElement[] = [dl];
  if (s.loading) {
    const { label, loaded, total } = s.loading;
    const mb = (b: number): string => (b / 1e6).toFixed(1);
    const bar = el('progress', undefined, { 'aria-label': label, max: String(total ?? 1), ...(total ? { value: String(loaded) } : {}) });
    const p = el('p', `${label}: ${mb(loaded)}${total ? ` of ${mb(total)}` : ''} MB `);
    p.append(bar);
    children.push(p);
  }
  if (s.error) children.push(el('p', s.error, { class: 'error', role: 'alert' }));
  root.replaceChildren(...children);
}
