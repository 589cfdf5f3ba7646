/**
 * Processes under a root, read from /proc (Linux): the harness finds a volunteer's browser to kill
 * it by PID, and the soak bench sums its renderers' resident memory.
 */
import { readdirSync, readFileSync } from 'node:fs';

export interface Proc {
  pid: number;
  ppid: number;
  cmdline: string;
  /** Resident set size, bytes. */
  rssBytes: number;
}

const PAGE_BYTES = 4096;

function read(pid: number): Proc | null {
  try {
    // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
    const rssPages = Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]);
    return { pid, ppid, cmdline, rssBytes: rssPages * PAGE_BYTES };
  } catch {
    // The process ended while we looked.
    return null;
  }
}

/** Every process below `root` (children, their children, ...), not `root` itself. */
export function descendants(root: number): Proc[] {
  const all = readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map((d) => read(Number(d)))
    .filter((p): p is Proc => p !== null);
  const below = new Set([root]);
  const out: Proc[] = [];
  // Parents are not always listed before their children: sweep until nothing is added.
  for (let added = true; added; ) {
    added = false;
    for (const p of all) {
      if (below.has(p.ppid) && !below.has(p.pid)) {
        below.add(p.pid);
        out.push(p);
        added = true;
      }
    }
  }
  return out;
}

/** The Chromium renderer processes below `root` (one per tab). */
export const renderers = (root: number): Proc[] => descendants(root).filter((p) => p.cmdline.includes('--type=renderer'));
