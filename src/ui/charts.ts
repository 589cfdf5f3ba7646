/**
 * Live plots over steps (uPlot): training loss, test accuracy, samples/s, and the step's time split
 * into compute, readback, allreduce and apply; for a language model also the validation loss in
 * bits per character (hidden until it has a point). DOM only; fed by training events.
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { BoundedSeries } from './series.ts';

interface Series {
  label: string;
  stroke: string;
}

interface Chart {
  plot: uPlot;
  /** At most 2048 points whatever the run's length (older points thinned evenly). */
  series: BoundedSeries;
}

type PlotId = 'loss' | 'bits' | 'accuracy' | 'throughput' | 'time';

const PLOTS: { id: PlotId; title: string; y: string; series: Series[]; hidden?: boolean }[] = [
  { id: 'loss', title: 'Training loss', y: 'loss', series: [{ label: 'loss', stroke: '#d9534f' }] },
  {
    id: 'bits',
    title: 'Validation loss, bits per character (language model)',
    y: 'bits/char',
    series: [{ label: 'bits/char', stroke: '#a5c' }],
    hidden: true,
  },
  { id: 'accuracy', title: 'Test accuracy', y: 'accuracy', series: [{ label: 'accuracy', stroke: '#2a7' }] },
  { id: 'throughput', title: 'Samples per second (room)', y: 'samples/s', series: [{ label: 'samples/s', stroke: '#37c' }] },
  {
    id: 'time',
    title: 'Step time: computation vs communication (this peer)',
    y: 'ms',
    series: [
      { label: 'compute', stroke: '#e90' },
      { label: 'readback', stroke: '#a5c' },
      { label: 'allreduce', stroke: '#37c' },
      { label: 'apply', stroke: '#888' },
    ],
  },
];

/** Keeps the plots; `point` adds values at a step, `reset` clears them for a new run. */
export class Charts {
  private readonly charts = new Map<string, Chart>();
  private dirty = new Set<string>();
  private frame = 0;

  constructor(root: HTMLElement) {
    for (const p of PLOTS) {
      const box = document.createElement('figure');
      box.className = 'chart';
      box.dataset.chart = p.id;
      box.hidden = p.hidden ?? false;
      const cap = document.createElement('figcaption');
      cap.textContent = p.title;
      box.append(cap);
      root.append(box);
      const series = new BoundedSeries(p.series.length);
      const width = Math.max(240, Math.min(520, box.clientWidth || 320));
      const plot = new uPlot(
        {
          width,
          height: 180,
          scales: { x: { time: false } },
          axes: [{ label: 'step' }, { label: p.y }],
          series: [{ label: 'step' }, ...p.series.map((s) => ({ label: s.label, stroke: s.stroke, width: 2 }))],
          legend: { show: p.series.length > 1 },
        },
        series.data as uPlot.AlignedData,
        box,
      );
      this.charts.set(p.id, { plot, series });
    }
    new ResizeObserver(() => {
      for (const c of this.charts.values()) {
        const w = Math.max(240, Math.min(520, c.plot.root.parentElement?.clientWidth ?? 320));
        if (Math.abs(w - c.plot.width) > 8) c.plot.setSize({ width: w, height: 180 });
      }
    }).observe(root);
  }

  /** Adds one point to plot `id` (values in its series' order). */
  point(id: PlotId, step: number, ...values: number[]): void {
    const chart = this.charts.get(id)!;
    if (!chart.series.push(step, ...values)) return;
    const box = chart.plot.root.parentElement;
    if (box?.hidden) box.hidden = false;
    this.dirty.add(id);
    // Redrawn at most once per frame however many steps arrive.
    this.frame ||= requestAnimationFrame(() => {
      this.frame = 0;
      for (const d of this.dirty) this.charts.get(d)!.plot.setData(this.charts.get(d)!.series.data as uPlot.AlignedData);
      this.dirty.clear();
    });
  }

  /** Points plotted so far, per plot (tests read it through the page API). */
  counts(): Record<string, number> {
    return Object.fromEntries([...this.charts].map(([id, c]) => [id, c.series.length]));
  }

  reset(): void {
    for (const c of this.charts.values()) {
      c.series.clear();
      c.plot.setData(c.series.data as uPlot.AlignedData);
    }
  }
}
