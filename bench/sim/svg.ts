/**
 * bench/results/simulate.svg: goodput against the number of peers, log-log, one panel per link
 * profile, one line per strategy (colour: topology; dashes: DiLoCo), for the README.
 */

export interface Series {
  label: string;
  color: string;
  dashed: boolean;
  /** [peers, goodput in samples/s] */
  points: [number, number][];
}

export interface Panel {
  title: string;
  series: Series[];
}

const W = 340;
const H = 300;
const PAD = { l: 62, r: 14, t: 30, b: 44 };

/** Powers of `base` from `lo` to `hi`, inclusive. */
const powers = (base: number, lo: number, hi: number): number[] => Array.from({ length: hi - lo + 1 }, (_, i) => base ** (lo + i));

const fmt = (v: number): string => (v >= 1e6 ? `${v / 1e6}M` : v >= 1e3 ? `${v / 1e3}k` : String(v));

/** `footnote`: lines under the legend. */
export function goodputSvg(panels: Panel[], footnote: string[]): string {
  const all = panels.flatMap((p) => p.series.flatMap((s) => s.points));
  const xs = all.map(([x]) => x);
  const positive = all.map(([, y]) => y).filter((y) => y > 0);
  const [xLo, xHi] = [Math.floor(Math.log2(Math.min(...xs))), Math.ceil(Math.log2(Math.max(...xs)))];
  const yHi = Math.ceil(Math.log10(Math.max(10, ...positive)));
  // At most 7 decades, and not below 10: what falls below (a strategy that hardly ever commits) sits on the bottom axis.
  const yLo = Math.max(yHi - 7, 1, Math.floor(Math.log10(Math.min(...positive))));
  const panel = (p: Panel, left: number): string => {
    const px = (x: number): number => left + PAD.l + ((W - PAD.l - PAD.r) * (Math.log2(x) - xLo)) / (xHi - xLo);
    const py = (y: number): number => {
      const l = y > 0 ? Math.max(yLo, Math.log10(y)) : yLo;
      return PAD.t + (H - PAD.t - PAD.b) * (1 - (l - yLo) / (yHi - yLo));
    };
    const [x0, x1, y0, y1] = [px(2 ** xLo), px(2 ** xHi), py(10 ** yLo), py(10 ** yHi)];
    return [
      `<text x="${left + PAD.l}" y="18" font-weight="bold">${p.title}</text>`,
      ...powers(10, yLo, yHi).map(
        (t) =>
          `<line x1="${x0}" x2="${x1}" y1="${py(t)}" y2="${py(t)}" stroke="#ddd"/><text x="${x0 - 6}" y="${py(t) + 4}" text-anchor="end">${fmt(t)}</text>`,
      ),
      ...powers(2, xLo, xHi).map(
        (t) =>
          `<line x1="${px(t)}" x2="${px(t)}" y1="${y0}" y2="${y1}" stroke="#eee"/><text x="${px(t)}" y="${y0 + 16}" text-anchor="middle">${t}</text>`,
      ),
      `<rect x="${x0}" y="${y1}" width="${x1 - x0}" height="${y0 - y1}" fill="none" stroke="#888"/>`,
      `<text x="${(x0 + x1) / 2}" y="${H - 8}" text-anchor="middle">peers N (log)</text>`,
      `<text x="${left + 14}" y="${(y0 + y1) / 2}" transform="rotate(-90 ${left + 14} ${(y0 + y1) / 2})" text-anchor="middle">goodput, samples/s (log)</text>`,
      ...p.series.map((s) => {
        const pts = s.points.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ');
        return `<polyline fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''} points="${pts}"/>`;
      }),
    ].join('\n');
  };
  const legend = (panels[0]?.series ?? [])
    .map((s, i) => {
      const x = PAD.l + i * 200;
      const y = H + 12;
      return `<line x1="${x}" x2="${x + 30}" y1="${y}" y2="${y}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/><text x="${x + 36}" y="${y + 4}">${s.label}</text>`;
    })
    .join('\n');
  const width = W * panels.length;
  const height = H + 36 + 16 * footnote.length;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    '<rect width="100%" height="100%" fill="white"/>',
    ...panels.map((p, i) => panel(p, i * W)),
    legend,
    ...footnote.map((line, i) => `<text x="${PAD.l}" y="${H + 42 + 16 * i}" font-size="11" fill="#555">${line}</text>`),
    '</svg>',
    '',
  ].join('\n');
}
