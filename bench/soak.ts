/**
 * `npm run bench -- soak [--minutes 60] [--peers 4] [--model mlp] [--cut-every S]`: one long run of
 * N tabs (src/harness/soak.ts), sampled every minute. Writes soak.json (every sample and a summary:
 * failed runs, memory slope after the warm-up, tensor count, step-time drift, accuracy) and
 * soak.svg (memory and step time over the run), which the README shows.
 */
import { writeFileSync } from 'node:fs';
import { slope, soak, type SoakOptions, type SoakReport, type SoakSample } from '../src/harness/soak.ts';

export interface SoakSummary {
  minutes: number;
  peers: number;
  model: string;
  failed_runs: number;
  error: string | null;
  steps: number;
  accuracy: number | null;
  /** Every peer ended with the same weights. */
  same_weights: boolean;
  warmup_minutes: number;
  /** Least-squares slopes after the warm-up, MB per minute per peer. */
  heap_slope_mb_per_min: number;
  rss_slope_mb_per_min: number;
  heap_mb_first: number;
  heap_mb_last: number;
  rss_mb_first: number;
  rss_mb_last: number;
  /** Tensors held per peer after the warm-up, least and most over all samples. */
  tensors_min: number;
  tensors_max: number;
  /** Mean step time in the first and the last window (10 minutes, or a third of a shorter soak), ms. */
  step_ms_first: number;
  step_ms_last: number;
  step_time_drift_pct: number;
  /** The most any peer held at any sample. */
  max_chart_points: number;
  max_event_log: number;
  max_mailbox_slots: number;
  max_peerjs_connections: number;
  max_listeners: number;
  faults: number;
  recoveries: number;
  /** Dials made again (no answer, or failed), all peers. */
  redials: number;
  cuts: number;
  link_reports: number;
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const perPeer = (s: SoakSample, f: (p: SoakSample['peers'][number]) => number): number => mean(s.peers.map(f));
const rssPerPeer = (s: SoakSample): number => s.rendererRssMB.reduce((a, b) => a + b, 0) / s.peers.length;

export function summarize(r: SoakReport): SoakSummary {
  const all = r.samples;
  const warmup = Math.min(5, r.options.minutes / 3);
  const after = all.filter((s) => s.minute >= warmup);
  const window = Math.min(10, r.options.minutes / 3);
  const stepMs = (from: number, to: number): number => {
    const xs = all
      .filter((s) => s.minute > from && s.minute <= to + 1e-9)
      .flatMap((s) => s.peers.map((p) => p.stepMs).filter((x): x is number => x !== null));
    return mean(xs);
  };
  const last = all.at(-1)?.minute ?? 0;
  const first = stepMs(0, window);
  const end = stepMs(last - window, last);
  const tensors = after.flatMap((s) => s.peers.map((p) => p.tensors));
  const most = (f: (p: SoakSample['peers'][number]) => number): number => Math.max(0, ...all.flatMap((s) => s.peers.map(f)));
  const sum = (f: (p: SoakSample['peers'][number]) => number): number => all.reduce((a, s) => a + s.peers.reduce((b, p) => b + f(p), 0), 0);
  return {
    minutes: r.options.minutes,
    peers: r.options.peers,
    model: r.options.model,
    failed_runs: r.result ? 0 : 1,
    error: r.error,
    steps: r.result?.steps ?? 0,
    accuracy: r.result?.accuracy ?? null,
    same_weights: !!r.result && new Set(r.result.checksums).size === 1,
    warmup_minutes: warmup,
    heap_slope_mb_per_min: slope(
      after.map((s) => s.minute),
      after.map((s) => perPeer(s, (p) => p.heapMB)),
    ),
    rss_slope_mb_per_min: slope(
      after.map((s) => s.minute),
      after.map(rssPerPeer),
    ),
    heap_mb_first: after[0] ? perPeer(after[0], (p) => p.heapMB) : 0,
    heap_mb_last: after.at(-1) ? perPeer(after.at(-1)!, (p) => p.heapMB) : 0,
    rss_mb_first: after[0] ? rssPerPeer(after[0]) : 0,
    rss_mb_last: after.at(-1) ? rssPerPeer(after.at(-1)!) : 0,
    tensors_min: Math.min(...tensors),
    tensors_max: Math.max(...tensors),
    step_ms_first: first,
    step_ms_last: end,
    step_time_drift_pct: first > 0 ? (100 * (end - first)) / first : 0,
    max_chart_points: most((p) => p.chartPoints),
    max_event_log: most((p) => p.eventLog),
    max_mailbox_slots: most((p) => p.mailboxSlots),
    max_peerjs_connections: most((p) => p.peerjsConnections),
    max_listeners: most((p) => p.listeners),
    faults: sum((p) => p.faults),
    recoveries: sum((p) => p.recoveries),
    redials: all.at(-1)?.peers.reduce((a, p) => a + p.redials, 0) ?? 0,
    cuts: r.cuts,
    link_reports: r.linkReports,
  };
}

/** Memory (heap and renderer RSS per peer) and step time over the run, as one SVG. */
export function soakSvg(r: SoakReport): string {
  const W = 720;
  const H = 220;
  const pad = { l: 56, r: 16, t: 28, b: 36 };
  const xs = r.samples.map((s) => s.minute);
  const xMax = Math.max(1, ...xs);
  const panel = (top: number, title: string, unit: string, lines: { label: string; color: string; ys: number[] }[]): string => {
    const yMax = Math.max(1, ...lines.flatMap((l) => l.ys)) * 1.1;
    const px = (x: number): number => pad.l + ((W - pad.l - pad.r) * x) / xMax;
    const py = (y: number): number => top + pad.t + (H - pad.t - pad.b) * (1 - y / yMax);
    const ticks = Array.from({ length: 5 }, (_, i) => (yMax * i) / 4);
    const xticks = Array.from({ length: 7 }, (_, i) => (xMax * i) / 6);
    return [
      `<text x="${pad.l}" y="${top + 18}" font-weight="bold">${title}</text>`,
      ...ticks.map(
        (t) =>
          `<line x1="${pad.l}" x2="${W - pad.r}" y1="${py(t)}" y2="${py(t)}" stroke="#ddd"/><text x="${pad.l - 6}" y="${py(t) + 4}" text-anchor="end">${t.toFixed(t < 10 ? 1 : 0)}</text>`,
      ),
      ...xticks.map((t) => `<text x="${px(t)}" y="${top + H - pad.b + 16}" text-anchor="middle">${t.toFixed(0)}</text>`),
      `<text x="${W / 2}" y="${top + H - 4}" text-anchor="middle">minutes</text>`,
      `<text x="14" y="${top + H / 2}" transform="rotate(-90 14 ${top + H / 2})" text-anchor="middle">${unit}</text>`,
      ...lines.map((l, i) => {
        const pts = l.ys.map((y, k) => `${px(xs[k]!).toFixed(1)},${py(y).toFixed(1)}`).join(' ');
        return `<polyline fill="none" stroke="${l.color}" stroke-width="2" points="${pts}"/><text x="${W - pad.r - 150}" y="${top + 18 + 14 * i}" fill="${l.color}">${l.label}</text>`;
      }),
    ].join('\n');
  };
  const body = [
    panel(0, `Memory per peer (${r.options.peers} tabs, ${r.options.model})`, 'MB', [
      { label: 'renderer RSS', color: '#d9534f', ys: r.samples.map(rssPerPeer) },
      { label: 'JS heap (after GC)', color: '#37c', ys: r.samples.map((s) => perPeer(s, (p) => p.heapMB)) },
    ]),
    panel(H, 'Mean step time', 'ms', [
      { label: 'step time', color: '#2a7', ys: r.samples.map((s) => mean(s.peers.map((p) => p.stepMs ?? 0))) },
    ]),
  ].join('\n');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${2 * H}" font-family="sans-serif" font-size="12">\n<rect width="100%" height="100%" fill="white"/>\n${body}\n</svg>\n`;
}

export async function benchSoak(o: SoakOptions, jsonFile: string, svgFile: string): Promise<SoakSummary> {
  const r = await soak(o);
  const summary = summarize(r);
  writeFileSync(jsonFile, `${JSON.stringify({ summary, ...r }, null, 2)}\n`);
  writeFileSync(svgFile, soakSvg(r));
  return summary;
}
