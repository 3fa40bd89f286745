/**
 * Checks for what reaches the agent from outside (the control plane's answers, files in the
 * state directory, `ip -j` output) before anything acts on it: a few composable schemas with
 * zod's `safeParse` shape. Written here because zod cost the agent about 1.5 MB of resident
 * memory on every host, for the dozen shapes it reads.
 *
 * Like zod's objects, an object schema keeps only the keys it names.
 *
 * Pure: no I/O.
 */

export interface Issue {
  readonly path: readonly (string | number)[];
  readonly message: string;
}

export type Checked<T> =
  | { readonly success: true; readonly data: T }
  | {
      readonly success: false;
      readonly error: { readonly issues: readonly Issue[]; readonly message: string };
    };

const INVALID: unique symbol = Symbol('invalid');
type Invalid = typeof INVALID;
type Path = (string | number)[];
type Run<T> = (value: unknown, path: Path, issues: Issue[]) => T | Invalid;

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

export class Schema<T> {
  constructor(readonly run: Run<T>) {}

  safeParse(value: unknown): Checked<T> {
    const issues: Issue[] = [];
    const data = this.run(value, [], issues);
    if (data === INVALID || issues.length > 0)
      return {
        success: false,
        error: {
          issues,
          message: issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; '),
        },
      };
    return { success: true, data };
  }

  nullable(): Schema<T | null> {
    return new Schema<T | null>((value, path, issues) =>
      value === null ? null : this.run(value, path, issues),
    );
  }

  /** May be absent (undefined) as an object's field. */
  optional(): Optional<T | undefined> {
    return new Optional<T | undefined>((value, path, issues) =>
      value === undefined ? undefined : this.run(value, path, issues),
    );
  }

  /** `fallback` when absent, as an object's field. */
  default(fallback: T): Optional<T> {
    return new Optional((value, path, issues) =>
      value === undefined ? fallback : this.run(value, path, issues),
    );
  }
}

/** A field an object may lack. */
export class Optional<T> extends Schema<T> {
  readonly mayBeAbsent = true;
}

const mayBeAbsent = (schema: Schema<unknown>): boolean => schema instanceof Optional;

export type Infer<S> = S extends Schema<infer T> ? T : never;

function fail(issues: Issue[], path: Path, message: string): Invalid {
  issues.push({ path: [...path], message });
  return INVALID;
}

export interface TextRule {
  readonly min?: number;
  readonly max?: number;
  readonly pattern?: RegExp;
  /** What a text that does not match `pattern` is told. */
  readonly patternMessage?: string;
}

export function string(rule: TextRule = {}): Schema<string> {
  return new Schema((value, path, issues) => {
    if (typeof value !== 'string')
      return fail(issues, path, `expected string, received ${describe(value)}`);
    if (rule.min !== undefined && value.length < rule.min)
      return fail(issues, path, `must hold at least ${rule.min} character(s)`);
    if (rule.max !== undefined && value.length > rule.max)
      return fail(issues, path, `must hold at most ${rule.max} character(s)`);
    if (rule.pattern && !rule.pattern.test(value))
      return fail(issues, path, rule.patternMessage ?? `does not match ${String(rule.pattern)}`);
    return value;
  });
}

export interface NumberRule {
  readonly int?: boolean;
  readonly min?: number;
  readonly max?: number;
}

export function number(rule: NumberRule = {}): Schema<number> {
  return new Schema((value, path, issues) => {
    if (typeof value !== 'number' || Number.isNaN(value))
      return fail(issues, path, `expected number, received ${describe(value)}`);
    if (rule.int && !Number.isInteger(value)) return fail(issues, path, 'expected an integer');
    if (rule.min !== undefined && value < rule.min)
      return fail(issues, path, `must be at least ${rule.min}`);
    if (rule.max !== undefined && value > rule.max)
      return fail(issues, path, `must be at most ${rule.max}`);
    return value;
  });
}

/** A whole number from 0 up: counts, revisions, versions. */
export const count = (): Schema<number> => number({ int: true, min: 0 });

export function boolean(): Schema<boolean> {
  return new Schema((value, path, issues) =>
    typeof value === 'boolean'
      ? value
      : fail(issues, path, `expected boolean, received ${describe(value)}`),
  );
}

export function oneOf<const V extends readonly (string | number)[]>(values: V): Schema<V[number]> {
  const allowed = new Set<unknown>(values);
  return new Schema((value, path, issues) =>
    allowed.has(value)
      ? (value as V[number])
      : fail(issues, path, `expected one of ${values.join(', ')}, received ${String(value)}`),
  );
}

export function array<T>(item: Schema<T>): Schema<T[]> {
  return new Schema((value, path, issues) => {
    if (!Array.isArray(value))
      return fail(issues, path, `expected array, received ${describe(value)}`);
    // Items that check as themselves (texts, numbers) leave the array as it came.
    let out: T[] | null = null;
    let ok = true;
    for (let i = 0; i < value.length; i++) {
      path.push(i);
      const v = item.run(value[i], path, issues);
      path.pop();
      if (v === INVALID) {
        ok = false;
        if (issues.length >= 10) break;
        continue;
      }
      if (out === null && v !== value[i]) out = value.slice(0, i) as T[];
      if (out !== null) out.push(v);
    }
    if (!ok) return INVALID;
    return out ?? (value as T[]);
  });
}

type Shape = Readonly<Record<string, Schema<unknown>>>;
/** Fields that may be absent from what comes out (`optional()`, not `default()`). */
type OptionalKeys<S extends Shape> = {
  [K in keyof S]: undefined extends Infer<S[K]> ? K : never;
}[keyof S];
type Flat<T> = { [K in keyof T]: T[K] };
export type ObjectOf<S extends Shape> = Flat<
  { [K in Exclude<keyof S, OptionalKeys<S>>]: Infer<S[K]> } & {
    [K in OptionalKeys<S>]?: Infer<S[K]>;
  }
>;

export function object<S extends Shape>(shape: S): Schema<ObjectOf<S>> {
  const fields = Object.entries<Schema<unknown>>(shape);
  return new Schema((value, path, issues) => {
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      return fail(issues, path, `expected object, received ${describe(value)}`);
    const source = value as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    let ok = true;
    for (const [key, schema] of fields) {
      const present = Object.hasOwn(source, key) ? source[key] : undefined;
      path.push(key);
      const v =
        present === undefined && !mayBeAbsent(schema)
          ? fail(issues, path, 'required')
          : schema.run(present, path, issues);
      path.pop();
      if (v === INVALID) ok = false;
      else if (v !== undefined) out[key] = v;
    }
    return ok ? (out as ObjectOf<S>) : INVALID;
  });
}

/** One of several object shapes, told apart by the text of their field `key`. */
export function union<M extends Readonly<Record<string, Schema<unknown>>>>(
  key: string,
  choices: M,
): Schema<Infer<M[keyof M]>> {
  return new Schema<Infer<M[keyof M]>>((value, path, issues) => {
    const tag =
      typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : null;
    const schema = typeof tag === 'string' && Object.hasOwn(choices, tag) ? choices[tag] : null;
    if (!schema) {
      path.push(key);
      fail(issues, path, `expected one of ${Object.keys(choices).join(', ')}`);
      path.pop();
      return INVALID;
    }
    return schema.run(value, path, issues) as Infer<M[keyof M]> | Invalid;
  });
}

export function literal<const V extends string>(text: V): Schema<V> {
  return oneOf([text] as const);
}
