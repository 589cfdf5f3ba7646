/**
 * Room secrets. A private room's link carries a random secret in its fragment (`#k=...`), which
 * browsers never send to a server. A peer derives the room key from it, and proves that it holds
 * the key by an HMAC of a nonce the coordinator chose for its connection (so a recorded hello
 * cannot be replayed) or, for HTTP, of the request and the current time. Only the tab that
 * creates a room sends the key itself, once. The server side computes the same HMACs with
 * node:crypto (server/room-auth.ts); these use WebCrypto, in browsers and in Node.
 */
import { toBase64Url } from './base64.ts';

/** Secrets are 16 random bytes (128 bits), base64url. */
export const SECRET_PATTERN = /^[A-Za-z0-9_-]{22}$/;
/** How far an HTTP proof's time may be from the server's, ms. */
export const HTTP_PROOF_SKEW_MS = 120_000;
/** The header carrying an HTTP proof: `<unix ms>.<hmac>`. */
export const AUTH_HEADER = 'x-ringtrain-auth';

/** Kept here too for the modules that import them with the rest of auth (one copy: base64.ts). */
export { fromBase64Url, toBase64Url } from './base64.ts';

/** A fresh room secret. */
export function newSecret(): string {
  return toBase64Url(crypto.getRandomValues(new Uint8Array(16)));
}

/** The texts that are signed: a hello on the connection with `nonce`, and an HTTP request at `time`. */
export const helloText = (nonce: string, room: string, peerId: string): string => `hello|${nonce}|${room}|${peerId}`;
/** What an HTTP proof signs: the method, room, time, a one-time nonce and the SHA-256 of the body (base64url). */
export const httpText = (method: string, room: string, time: number, nonce: string, bodyHash: string): string =>
  `http|${method.toUpperCase()}|${room}|${time}|${nonce}|${bodyHash}`;
/** What the room key hashes: the secret bound to the room's name. */
export const keyText = (room: string, secret: string): string => `ringtrain-room-v1|${room}|${secret}`;

const utf8 = (s: string): Uint8Array<ArrayBuffer> => new TextEncoder().encode(s);

/** The room key, SHA-256 of {@link keyText}. */
export async function roomKey(room: string, secret: string): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', utf8(keyText(room, secret))));
}

/** HMAC-SHA256 of `text` under `key`, base64url. */
export async function hmac(key: Uint8Array<ArrayBuffer>, text: string): Promise<string> {
  const k = await crypto.subtle.importKey('raw', key, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return toBase64Url(new Uint8Array(await crypto.subtle.sign('HMAC', k, utf8(text))));
}

/** SHA-256 of `body`, base64url (what an HTTP proof binds). */
export async function bodyHash(body: Uint8Array<ArrayBuffer>): Promise<string> {
  return toBase64Url(new Uint8Array(await crypto.subtle.digest('SHA-256', body)));
}

/**
 * The header value proving `key` for one HTTP `method` on `room`'s resources with `body`, now:
 * `<time>.<nonce>.<hmac>`. The server accepts each proof once, within {@link HTTP_PROOF_SKEW_MS}.
 */
export async function httpAuth(
  key: Uint8Array<ArrayBuffer>,
  method: string,
  room: string,
  body: Uint8Array<ArrayBuffer>,
  now = Date.now(),
): Promise<string> {
  const nonce = toBase64Url(crypto.getRandomValues(new Uint8Array(12)));
  return `${now}.${nonce}.${await hmac(key, httpText(method, room, now, nonce, await bodyHash(body)))}`;
}

/** Header of a room write: the writer's peer id and its membership token (`<peerId>.<token>`). */
export const MEMBER_HEADER = 'x-ringtrain-member';
