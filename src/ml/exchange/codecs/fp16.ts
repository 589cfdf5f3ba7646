/** fp16: the ring carries the gradient as float16 (protocol/wire.ts); the loss and count stay float32. */
import { QuantisingCodec, type CodecFactory } from './codec.ts';

export const fp16: CodecFactory<'fp16', QuantisingCodec> = (_spec, slots) => new QuantisingCodec('fp16', 'f16', slots);
