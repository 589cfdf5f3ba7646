/** Wire protocol version. Bumped on any incompatible change to control messages or frames. */
export const PROTOCOL_VERSION = 3;
