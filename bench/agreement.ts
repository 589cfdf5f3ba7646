/**
 * What state agreement by corroboration costs (training/consensus.ts), part of
 * `npm run bench -- robust`: for a state the size of the MLP's (weights and Adam's moments), on
 * `peers` peers of an in-memory room (real SHA-256, real ECDSA signatures, the real collectives;
 * only the links are in-process), the time of each part of one agreement after a view change:
 *
 * - the digests each peer makes of its two states (SHA-256 in TypeScript);
 * - the signed all-gather of the claims;
 * - the broadcast of the chosen state to a newcomer, with its digest checked on arrival;
 *
 * against what the rule before it did: one sum of N floats and the same broadcast, unchecked.
 * Agreement runs once per view change, not per step.
 */
import { encodeCheckpoint } from '../src/protocol/checkpoint.ts';
import { BLOBS, TestRoom } from '../src/test/room.ts';
import { adoptChosen, digestWords, gatherClaims, type HeldState } from '../src/training/consensus.ts';
import type { Group } from '../src/training/trainer.ts';

/** The MLP 784-128-10's parameters. */
const MLP_PARAMS = 784 * 128 + 128 + 128 * 10 + 10;

export interface AgreementRow {
  measure: 'state agreement';
  peers: number;
  state_bytes: number;
  digests_ms: number;
  claims_ms: number;
  broadcast_checked_ms: number;
  total_ms: number;
  /** The rule before: a sum of N floats, then the broadcast unchecked. */
  before_ms: number;
  ratio: number;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const round = (x: number): number => Math.round(x * 100) / 100;

async function timed<T>(f: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const out = await f();
  return [out, performance.now() - t0];
}

/** A state of `params` weights with Adam's two moments, at `step`. */
function state(params: number, step: number): HeldState {
  const weights = Float32Array.from({ length: params }, (_, i) => Math.sin(i + step));
  const optimizer = Float32Array.from({ length: 2 * params + 1 }, (_, i) => Math.cos(i * step));
  return { held: step + 1, bytes: encodeCheckpoint({ step, runKey: 'bench', weights, optimizer }) };
}

export async function benchAgreement(o: { peers: number; reps?: number }, log: (s: string) => void): Promise<AgreementRow> {
  const room = new TestRoom(BLOBS, { chunkBytes: 64 * 1024, timeoutMs: 60_000 });
  const ids = Array.from({ length: o.peers }, (_, i) => `p${i}`);
  for (const id of ids) room.add(id);
  const groups: Group[] = await Promise.all(ids.map((id) => room.group(id)));
  // Every peer but the last holds the state at step 100 and the one before; the last is new.
  const states = [state(MLP_PARAMS, 100), state(MLP_PARAMS, 99)];
  const samples = { digests: [] as number[], claims: [] as number[], broadcast: [] as number[], before: [] as number[] };
  for (let rep = 0; rep < (o.reps ?? 5); rep++) {
    samples.digests.push((await timed(async () => states.map((s) => digestWords(s.bytes))))[1]);
    const [claims, claimsMs] = await timed(() =>
      Promise.all(groups.map((g, r) => gatherClaims((v) => g.allGather(v), r < o.peers - 1 ? states : []))),
    );
    samples.claims.push(claimsMs);
    const chosen = claims[0]!.chosen!;
    samples.broadcast.push(
      (await timed(() => Promise.all(groups.map((g, r) => adoptChosen(g, chosen, r < o.peers - 1 ? states[0]!.bytes : null, 100)))))[1],
    );
    samples.before.push(
      (
        await timed(async () => {
          await Promise.all(groups.map((g) => g.sum(new Float32Array(o.peers + 2))));
          await Promise.all(groups.map((g, r) => g.broadcast(0, r === 0 ? states[0]!.bytes : null)));
        })
      )[1],
    );
  }
  const [digests, claimsMs, broadcast, before] = [
    median(samples.digests),
    median(samples.claims),
    median(samples.broadcast),
    median(samples.before),
  ];
  const row: AgreementRow = {
    measure: 'state agreement',
    peers: o.peers,
    state_bytes: states[0]!.bytes.length,
    digests_ms: round(digests),
    claims_ms: round(claimsMs),
    broadcast_checked_ms: round(broadcast),
    total_ms: round(claimsMs + broadcast),
    before_ms: round(before),
    ratio: round((claimsMs + broadcast) / before),
  };
  log(
    `state agreement (${o.peers} peers, ${(row.state_bytes / 1e6).toFixed(2)} MB state, in-memory links): claims ${row.claims_ms} ms ` +
      `(of which each peer's two digests ${row.digests_ms} ms) + checked broadcast ${row.broadcast_checked_ms} ms = ${row.total_ms} ms per view change, ` +
      `against ${row.before_ms} ms for the claim by sum: x${row.ratio}`,
  );
  return row;
}
