/** Runs the server from command-line arguments until SIGINT/SIGTERM (`npm start`, `ringtrain serve`). */
import path from 'node:path';
import { startServer } from './app.ts';
import { ConfigError, parseServerArgs, SERVER_USAGE } from './config.ts';

const root = path.resolve(import.meta.dirname, '../..');

/** Starts the server with `argv`; a configuration mistake prints its fix and exits with status 2. */
export async function runServer(argv: string[], usagePrefix: string): Promise<void> {
  let opts;
  try {
    opts = parseServerArgs(argv, process.env, root);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    console.error(`error: ${e.message}`);
    process.exit(2);
  }
  if (opts.help) {
    console.log(`${usagePrefix} [options]\n${SERVER_USAGE}`);
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
