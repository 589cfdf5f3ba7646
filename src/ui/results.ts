/**
 * What a finished run shows: a confusion matrix on this peer's test shard, a few test images with
 * their predictions, and a tree's top levels. DOM only.
 */
import type { Tree } from '../ml/trees/tree.ts';

/** Counts `matrix[true * k + predicted]` drawn as a table, darker cells for larger shares of a row. */
export function renderConfusion(root: HTMLElement, matrix: Int32Array, classNames: readonly string[]): void {
  const k = classNames.length;
  const table = document.createElement('table');
  table.className = 'confusion';
  table.createCaption().textContent = "Confusion matrix on this peer's test shard (rows: true class, columns: predicted)";
  const head = table.createTHead().insertRow();
  head.append(document.createElement('th'));
  for (const name of classNames) {
    const th = document.createElement('th');
    th.scope = 'col';
    th.textContent = name;
    head.append(th);
  }
  const body = table.createTBody();
  for (let t = 0; t < k; t++) {
    const row = body.insertRow();
    const th = document.createElement('th');
    th.scope = 'row';
    th.textContent = classNames[t]!;
    row.append(th);
    let total = 0;
    for (let p = 0; p < k; p++) total += matrix[t * k + p]!;
    for (let p = 0; p < k; p++) {
      const v = matrix[t * k + p]!;
      const cell = row.insertCell();
      cell.textContent = String(v);
      const share = total > 0 ? v / total : 0;
      cell.style.background = `rgba(${p === t ? '40,160,90' : '210,60,60'}, ${share.toFixed(3)})`;
    }
  }
  root.replaceChildren(table);
}

/** Grey-scale images (`pixels` row-major, values in [0, 1]) with "predicted (true)" captions. */
export function renderSamples(root: HTMLElement, images: { pixels: Float32Array; side: number; predicted: string; truth: string }[]): void {
  const list = document.createElement('ul');
  list.className = 'samples';
  for (const im of images) {
    const li = document.createElement('li');
    const canvas = document.createElement('canvas');
    canvas.width = canvas.height = im.side;
    const ctx = canvas.getContext('2d')!;
    const data = ctx.createImageData(im.side, im.side);
    for (let i = 0; i < im.side * im.side; i++) {
      const v = 255 - Math.round(255 * Math.min(1, Math.max(0, im.pixels[i]!)));
      data.data.set([v, v, v, 255], i * 4);
    }
    ctx.putImageData(data, 0, 0);
    canvas.setAttribute('role', 'img');
    canvas.setAttribute('aria-label', `predicted ${im.predicted}, true ${im.truth}`);
    const cap = document.createElement('span');
    cap.textContent = im.predicted === im.truth ? im.predicted : `${im.predicted} (is ${im.truth})`;
    if (im.predicted !== im.truth) cap.className = 'error';
    li.append(canvas, cap);
    list.append(li);
  }
  root.replaceChildren(list);
}

/** The top `levels` of a tree as nested lists: split feature, threshold and row counts; leaves show their output. */
export function renderTree(
  root: HTMLElement,
  tree: Tree,
  featureName: (f: number) => string,
  leafLabel: (value: number[]) => string,
  levels = 3,
): void {
  const item = (i: number, depth: number): HTMLLIElement => {
    const n = tree.nodes[i]!;
    const li = document.createElement('li');
    if (n.feature < 0) {
      li.textContent = `leaf: ${leafLabel(n.value)} (${n.count} rows)`;
      return li;
    }
    li.textContent = `${featureName(n.feature)} < ${n.threshold.toPrecision(3)} (${n.count} rows)`;
    if (depth + 1 < levels) {
      const ul = document.createElement('ul');
      ul.append(item(n.left, depth + 1), item(n.right, depth + 1));
      li.append(ul);
    } else {
      li.append(' …');
    }
    return li;
  };
  const ul = document.createElement('ul');
  ul.className = 'tree';
  ul.append(item(0, 0));
  root.replaceChildren(ul);
}
