/** `npm start`: the app, PeerJS signaling and the room coordinator on one port. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from './app.ts';
import { ConfigError, parseServerArgs, SERVER_USAGE } from './config.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

async function main(): Promise<void> {
  const opts = parseServerArgs(process.argv.slice(2), process.env, root);
  if (opts.help) {
    console.log(`npm start -- [options]\n${SERVER_USAGE}`);
    return;
  }
  const server = await startServer({ ...opts, log: (m) => console.log(`[coordinator] ${m}`) });
  console.log(`RingTrain ${opts.mode === 'dev' ? '(dev)' : '(prod)'} listening on ${server.url}`);
  console.log(`Open ${server.url}/?room=demo in several tabs to form a ring.`);
  const stop = (): void => {
    void server.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((e: unknown) => {
  console.error(e instanceof ConfigError ? `error: ${e.message}` : e);
  process.exit(1);
});
