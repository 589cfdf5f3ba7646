/** int8: the ring carries the gradient as int8 with a scale per chunk (protocol/wire.ts); the loss and count stay float32. */
import { QuantisingCodec, type CodecFactory } from './codec.ts';

export const int8: CodecFactory<'int8', QuantisingCodec> = (_spec, slots) => new QuantisingCodec('int8', 'i8', slots);
