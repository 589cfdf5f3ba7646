/**
 * The cluster as the room's stats describe it: the ring drawn as a circle of peers with the
 * direction of flow and each link's MB/s, and a table of peers. DOM only.
 */
import type { PeerStats } from '../protocol/messages.ts';

const SVG = 'http://www.w3.org/2000/svg';

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, text?: string): SVGElementTagNameMap[K] {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

const short = (id: string): string => id.slice(0, 6);
const mbps = (bytesPerSec: number): string => `${(bytesPerSec / 1e6).toFixed(bytesPerSec < 1e7 ? 2 : 1)} MB/s`;

/**
 * Draws `members` (ring order) on a circle, each arrow from a peer to the next labelled with the
 * sender's rate; `self` is highlighted.
 */
export function renderRing(root: HTMLElement, members: string[], self: string | null, stats: ReadonlyMap<string, PeerStats>): void {
  const size = 320;
  const c = size / 2;
  const r = members.length > 1 ? 110 : 0;
  const s = svg('svg', {
    viewBox: `0 0 ${size} ${size}`,
    role: 'img',
    'aria-label': `Ring of ${members.length} peer(s): ${members.map(short).join(' → ')}`,
    'data-peers': members.length,
  });
  const defs = svg('defs', {});
  const marker = svg('marker', {
    id: 'arrow',
    viewBox: '0 0 10 10',
    refX: 9,
    refY: 5,
    markerWidth: 7,
    markerHeight: 7,
    orient: 'auto-start-reverse',
  });
  marker.append(svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', fill: 'currentColor' }));
  defs.append(marker);
  s.append(defs);
  const at = (i: number): [number, number] => {
    const a = (2 * Math.PI * i) / members.length - Math.PI / 2;
    return [c + r * Math.cos(a), c + r * Math.sin(a)];
  };
  const node = 24;
  if (members.length > 1) {
    members.forEach((id, i) => {
      const [x1, y1] = at(i);
      const [x2, y2] = at((i + 1) % members.length);
      const len = Math.hypot(x2 - x1, y2 - y1) || 1;
      const [ux, uy] = [(x2 - x1) / len, (y2 - y1) / len];
      // Bowed outwards a little so both directions of a 2-peer ring stay apart.
      const [mx, my] = [(x1 + x2) / 2, (y1 + y2) / 2];
      const [ox, oy] = members.length === 2 ? [uy * 40, -ux * 40] : [(mx - c) * 0.15, (my - c) * 0.15];
      const path = svg('path', {
        d: `M ${x1 + ux * node} ${y1 + uy * node} Q ${mx + ox} ${my + oy} ${x2 - ux * node} ${y2 - uy * node}`,
        fill: 'none',
        stroke: 'currentColor',
        'stroke-width': 1.5,
        'marker-end': 'url(#arrow)',
        class: 'link',
      });
      s.append(path);
      const rate = stats.get(id)?.sendBytesPerSec;
      s.append(
        svg(
          'text',
          {
            x: mx + ox * 1.3,
            y: my + oy * 1.3,
            'text-anchor': 'middle',
            class: 'rate',
            'data-link': `${id}>${members[(i + 1) % members.length]}`,
          },
          rate === undefined ? '…' : mbps(rate),
        ),
      );
    });
  }
  members.forEach((id, i) => {
    const [x, y] = at(i);
    const g = svg('g', { class: id === self ? 'peer self' : 'peer', 'data-peer': id });
    g.append(svg('circle', { cx: x, cy: y, r: node }));
    g.append(svg('text', { x, y: y - 3, 'text-anchor': 'middle', class: 'rank' }, `#${i}`));
    g.append(svg('text', { x, y: y + 11, 'text-anchor': 'middle', class: 'id' }, short(id)));
    s.append(g);
  });
  root.replaceChildren(s);
}

/** The table of peers: backend, samples/s, step time split, shard size, state. */
export function renderPeersTable(root: HTMLElement, members: string[], self: string | null, stats: ReadonlyMap<string, PeerStats>): void {
  const table = document.createElement('table');
  table.className = 'peers';
  const head = table.createTHead().insertRow();
  for (const h of [
    'rank',
    'peer',
    'state',
    'backend',
    'shard',
    'step',
    'samples/s',
    'compute ms',
    'readback ms',
    'allreduce ms',
    'apply ms',
    'sends',
  ]) {
    const th = document.createElement('th');
    th.scope = 'col';
    th.textContent = h;
    head.append(th);
  }
  const body = table.createTBody();
  members.forEach((id, rank) => {
    const st = stats.get(id);
    const row = body.insertRow();
    row.dataset.peer = id;
    if (id === self) row.dataset.self = '';
    const cells = [
      `${rank}`,
      id === self ? `${short(id)} (this tab)` : short(id),
      st?.state ?? 'idle',
      st?.backend ?? '…',
      st ? `${st.shard}` : '…',
      st ? `${st.step}` : '…',
      st ? Math.round(st.samplesPerSec).toString() : '…',
      ...(st ? [st.computeMs, st.readbackMs, st.allreduceMs, st.applyMs].map((v) => v.toFixed(1)) : ['…', '…', '…', '…']),
      st ? mbps(st.sendBytesPerSec) : '…',
    ];
    for (const c of cells) row.insertCell().textContent = c;
  });
  root.replaceChildren(table);
}
