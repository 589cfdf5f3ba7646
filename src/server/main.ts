/** `npm start`: the app, PeerJS signaling and the room coordinator on one port. */
import { runServer } from './run.ts';

runServer(process.argv.slice(2), 'npm start --').catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
