/**
 * `--tls-cert/--tls-key` as a user passes them: the server process started with a certificate
 * speaks HTTPS, and the pages' signaling and coordinator sockets are WSS. Two tabs join over it
 * and allreduce exactly (plain ws:// to an https server would never connect).
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { selfSignedCert } from '../src/harness/netns.ts';
import { joinPage, waitForMembers } from '../src/harness/cluster.ts';
import { expect, newContext, roomName, test } from './peers.ts';

const ROOT = path.resolve(import.meta.dirname, '..');

test('the server with --tls-cert/--tls-key serves HTTPS and WSS: two tabs join and allreduce exactly', async ({ ringBrowser }) => {
  test.setTimeout(120_000);
  const cert = await selfSignedCert('127.0.0.1');
  const server = spawn(
    process.execPath,
    ['--import', 'tsx', 'src/server/main.ts', '--prod', '--port', '0', '--tls-cert', cert.cert, '--tls-key', cert.key],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    const origin = await new Promise<string>((resolve, reject) => {
      let out = '';
      server.stdout!.on('data', (b: Buffer) => {
        out += b.toString();
        const m = /listening on (https:\/\/127\.0\.0\.1:\d+)/.exec(out);
        if (m) resolve(m[1]!);
      });
      server.on('exit', (code) => reject(new Error(`the server exited with ${code}: ${out}`)));
    });
    const ctx = await newContext(ringBrowser, origin, { trustCertificate: true });
    const room = roomName('tls');
    const pages = [await ctx.newPage(), await ctx.newPage()];
    for (const p of pages) await joinPage(p, room, { backend: 'cpu' });
    await Promise.all(pages.map((p) => waitForMembers(p, 2)));
    expect(await pages[0]!.evaluate(() => ({ protocol: location.protocol, secure: isSecureContext }))).toEqual({
      protocol: 'https:',
      secure: true,
    });
    const sums = await Promise.all(
      pages.map((p, i) =>
        p.evaluate(async (i) => Array.from(await window.ringtrain.allreduce(Float32Array.from([1, 2, 3], (x) => x * (i + 1)))), i),
      ),
    );
    for (const s of sums) expect(s).toEqual([3, 6, 9]);
    await ctx.close();
  } finally {
    server.kill();
    cert.remove();
  }
});
