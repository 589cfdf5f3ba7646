/**
 * Base64 and base64url of bytes, the one copy (the page's model files, room secrets and keys, HMACs).
 * btoa/atob work in browsers and in Node; bytes go through a binary string in chunks, so a large
 * weights file never overflows the call stack.
 */

const CHUNK = 0x8000;

/** Standard base64, with padding. */
export function toBase64(bytes: Uint8Array): string {
  let bin = '';
  for (let i = 0; i < bytes.length; i += CHUNK) bin += String.fromCharCode(...bytes.subarray(i, i + CHUNK));
  return btoa(bin);
}

/** The bytes of standard base64 or base64url, padded or not. Throws a DOMException on other characters. */
export function fromBase64(s: string): Uint8Array<ArrayBuffer> {
  const bin = atob(s.replace(/-/g, '+').replace(/_/g, '/'));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/** base64url without padding (URL and header safe). */
export function toBase64Url(bytes: Uint8Array): string {
  return toBase64(bytes).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** The bytes of base64url (or standard base64). */
export const fromBase64Url = fromBase64;
