/**
 * The control flags: every sum and all-gather the loop makes (a step's, an evaluation's, the
 * `auto` probe's, a paused room's polls, an agreement's) carries this peer's pause/stop requests
 * in its exact tail, and the room's totals land in {@link ControlFlags.room} after each. Every
 * peer makes the same calls in the same order, so all see the same totals and pause, resume or
 * stop at the same step. The bottom stage: it wraps the group's collectives.
 */
import type { Contribution } from '../contribution.ts';
import type { Exchange, Stage, WireAdditions } from '../stage.ts';

/** This peer's requests. */
export interface ControlRequests {
  pause: boolean;
  stop: boolean;
}

/** The room's requests as the last collective reported them: how many peers ask for each. */
export interface RoomControl {
  pause: number;
  stop: number;
}

const FLAGS = 2;

export class ControlFlags implements Stage {
  readonly name = 'control';
  readonly adds: WireAdditions = { tail: ['pause', 'stop'], rounds: 0 };
  readonly room: RoomControl = { pause: 0, stop: 0 };

  /** `mine`: this peer's requests, read at every collective (absent: none). */
  constructor(private readonly mine?: () => ControlRequests) {}

  private withFlags(c: Contribution): Contribution {
    const m = this.mine?.() ?? { pause: false, stop: false };
    // In place: every contribution keeps spare room for its tail.
    return c.append({ pause: m.pause ? 1 : 0, stop: m.stop ? 1 : 0 });
  }

  wrap(inner: Exchange): Exchange {
    return {
      /** The sum; the flags travel as exact float32 whatever the wire. */
      sum: async (c) => {
        const total = await inner.sum(this.withFlags(c));
        this.room.pause = total.get('pause');
        this.room.stop = total.get('stop');
        return total.dropTail(FLAGS);
      },
      /** Every rank's contribution (the flags summed over the ranks). */
      allGather: async (c) => {
        const parts = await inner.allGather(this.withFlags(c));
        this.room.pause = parts.reduce((a, p) => a + p.get('pause'), 0);
        this.room.stop = parts.reduce((a, p) => a + p.get('stop'), 0);
        return parts.map((p) => p.dropTail(FLAGS));
      },
    };
  }
}
