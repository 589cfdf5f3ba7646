/**
 * What `GET /api/rooms/<room>/ice` answers a member of the room (see server/turn.ts): the ICE
 * servers its peer connections use, credentials included, and how long minted TURN credentials
 * stay valid. Strangers get only `GET /api/config`'s servers, which carry no credentials.
 */
import { z } from 'zod';
import { clientConfigSchema } from './messages.ts';

export const memberIceSchema = z.object({
  /** The operator's servers (at most 16) and one minted TURN entry. */
  iceServers: z.array(clientConfigSchema.shape.iceServers.element).max(17),
  /** Lifetime of the minted TURN credentials from the moment of the answer, ms; none: nothing expires. */
  ttlMs: z.number().int().positive().optional(),
});
export type MemberIce = z.infer<typeof memberIceSchema>;
