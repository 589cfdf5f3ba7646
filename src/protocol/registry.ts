/**
 * Registries, the protocol half: a catalog names the choices of one kind (models, datasets,
 * optimizers, algorithms, codecs, aggregation rules) and says, for each name, what it is (a
 * description for the form and the CLI) and which options it takes (a zod schema). The run-config
 * schema, the dashboard's choices and the CLI's usage are derived from the catalogs
 * (protocol/catalogs.ts); the layers that make things attach a factory per name with an
 * exhaustive map (`satisfies Record<Name<typeof CATALOG>, Factory>`), so a name without a factory
 * does not compile. Pure: zod only.
 */
import { z } from 'zod';

/** What one name of a catalog means. */
export interface Entry {
  /** Short text for the form's option. */
  label: string;
  /** One line for the CLI's usage and the docs. */
  description: string;
  /** The options that go with this name: the fields next to the name in a config (strict). */
  options: z.ZodObject;
  /**
   * Ready-made option values that the form and the CLI offer as one choice each, by choice name
   * (e.g. `powersgd-r2`: rank 2). Absent: the name itself is the one choice, with no options.
   */
  presets?: Readonly<Record<string, { label: string; options: Readonly<Record<string, unknown>> }>>;
}

/** A catalog: names in the order the form and the CLI list them. */
export type Catalog = Readonly<Record<string, Entry>>;

/** The names of a catalog. */
export type Name<C extends Catalog> = keyof C & string;

/** The config value of one name of a catalog: the name under `key`, with its options. */
export type SpecOf<C extends Catalog, K extends string> = {
  [N in Name<C>]: Flat<{ [P in K]: N } & OptionsOf<C[N]>>;
}[Name<C>];
/** The options' type of an entry (nothing for an empty schema, which zod infers as an index signature). */
export type OptionsOf<E extends Entry> = [keyof E['options']['shape']] extends [never] ? unknown : z.infer<E['options']>;
type Flat<T> = { [P in keyof T]: T[P] };

/** Keeps a catalog's literal names and entry types (a typed identity). */
export const catalog = <const C extends Catalog>(c: C): C => c;

/** The names of `c`, in order. */
export function namesOf<C extends Catalog>(c: C): [Name<C>, ...Name<C>[]] {
  const names = Object.keys(c) as Name<C>[];
  if (names.length === 0) throw new Error('a catalog needs at least one name');
  return names as [Name<C>, ...Name<C>[]];
}

/** "a, b or c". */
export function listed(names: readonly string[], last = 'or'): string {
  return names.length < 2 ? (names[0] ?? '') : `${names.slice(0, -1).join(', ')} ${last} ${names.at(-1)}`;
}

const shown = (v: unknown): string => (typeof v === 'string' ? `"${v}"` : (JSON.stringify(v) ?? String(v)));

/** A name of `c` (a config field such as `model`); anything else is refused with the valid names. */
export function nameSchema<C extends Catalog>(c: C): z.ZodEnum<{ [N in Name<C>]: N }> {
  const names = namesOf(c);
  return z.enum(names, { error: (iss) => `${shown(iss.input)} is not one of ${names.join(', ')}` });
}

/**
 * A name of `c` under `key` with that name's options, strictly (a config field such as
 * `compression: {kind: 'powersgd', rank: 2}`). An unknown name is refused with the valid names.
 */
export function specSchema<C extends Catalog, K extends string>(c: C, key: K): z.ZodType<SpecOf<C, K>> {
  const names = namesOf(c);
  const options = names.map((n) => z.strictObject({ [key]: z.literal(n), ...c[n]!.options.shape }));
  return z.discriminatedUnion(key, options as [(typeof options)[number], ...typeof options], {
    error: (iss) =>
      iss.code === 'invalid_union'
        ? `${shown((iss.input as Record<string, unknown>)?.[key])} is not one of ${names.join(', ')}`
        : undefined,
    // zod infers the union from objects built in a loop (string keys), not from the catalog's
    // mapped type; SpecOf is what those objects accept, so the one cast in src/ is here.
  }) as unknown as z.ZodType<SpecOf<C, K>>;
}

/** One choice the form and the CLI offer: its value, its label, and what it stands for. */
export interface Choice {
  value: string;
  label: string;
  /** The catalog name it picks. */
  name: string;
  /** The options that go with it (empty for a name without options). */
  options: Readonly<Record<string, unknown>>;
}

/** The choices of `c`: each name's presets, or the name itself when it has none. */
export function choicesOf(c: Catalog): Choice[] {
  return Object.entries(c).flatMap(([name, e]) =>
    e.presets
      ? Object.entries(e.presets).map(([value, p]) => ({ value, label: p.label, name, options: p.options }))
      : [{ value: name, label: e.label, name, options: {} }],
  );
}
