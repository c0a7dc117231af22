// Reading saved state back (snapshots, docs/snapshots.md): plain data in, every field checked before use.

/**
 * Saved state is plain data: objects, numbers, strings, booleans, bigints, arrays and typed arrays, so that
 * a file format can carry it and a test can compare it. A part's `restoreState` reads it through a
 * `StateReader`, which throws StateError naming the field at the first thing that is missing or of the
 * wrong type or size; a part checks everything before it changes anything, so a bad snapshot leaves it as it was.
 */
export class StateError extends Error {}

/** The largest count a snapshot may hold: above 2^53 adding one changes nothing, and a machine would stand still. */
export const MAX_AMOUNT = 2 ** 52;

type TypedArrayConstructor<T> = { new (length: number): T; readonly name: string };
type TypedArray = Uint8Array | Uint16Array | Uint32Array | Int32Array | Float64Array;

export class StateReader {
  private readonly fields: Record<string, unknown>;

  /** `value` must be a plain object; `path` names it in errors ("hart 1", "uart"). */
  constructor(value: unknown, readonly path: string) {
    if (typeof value !== 'object' || value === null || Array.isArray(value) || ArrayBuffer.isView(value)) {
      throw new StateError(`${path}: not an object`);
    }
    this.fields = value as Record<string, unknown>;
  }

  private name(key: string): string {
    return `${this.path}.${key}`;
  }

  private get(key: string): unknown {
    if (!Object.prototype.hasOwnProperty.call(this.fields, key)) throw new StateError(`${this.name(key)}: missing`);
    return this.fields[key];
  }

  /** A number (not NaN); with bounds, an integer in [min, max]. */
  number(key: string, min?: number, max?: number): number {
    const v = this.get(key);
    if (typeof v !== 'number' || Number.isNaN(v)) throw new StateError(`${this.name(key)}: not a number`);
    if (min !== undefined && (!Number.isInteger(v) || v < min || v > (max ?? Number.MAX_SAFE_INTEGER))) {
      throw new StateError(`${this.name(key)}: ${v} is not an integer in [${min}, ${max ?? Number.MAX_SAFE_INTEGER}]`);
    }
    return v;
  }

  /** A count or amount of cycles: finite, at least 0, at most 2^52 (so that adding to it still moves it). */
  amount(key: string): number {
    const v = this.number(key);
    if (!(v >= 0 && v <= MAX_AMOUNT)) throw new StateError(`${this.name(key)}: ${v} is not an amount in [0, 2^52]`);
    return v;
  }

  /** A typed array (as `typed`) every element of which is an amount (see `amount`). */
  amounts<T extends Float64Array>(key: string, ctor: TypedArrayConstructor<T>, length?: number): T {
    const array = this.typed(key, ctor, length);
    if (!array.every((v) => v >= 0 && v <= MAX_AMOUNT)) throw new StateError(`${this.name(key)}: not amounts in [0, 2^52]`);
    return array;
  }

  boolean(key: string): boolean {
    const v = this.get(key);
    if (typeof v !== 'boolean') throw new StateError(`${this.name(key)}: not a boolean`);
    return v;
  }

  string(key: string): string {
    const v = this.get(key);
    if (typeof v !== 'string') throw new StateError(`${this.name(key)}: not a string`);
    return v;
  }

  bigint(key: string): bigint {
    const v = this.get(key);
    if (typeof v !== 'bigint') throw new StateError(`${this.name(key)}: not a bigint`);
    return v;
  }

  /** A typed array of exactly `ctor`'s type and, when given, `length` elements. */
  typed<T extends TypedArray>(key: string, ctor: TypedArrayConstructor<T>, length?: number): T {
    const v = this.get(key);
    if (!(v instanceof (ctor as unknown as typeof Uint8Array))) throw new StateError(`${this.name(key)}: not a ${ctor.name}`);
    const array = v as unknown as T;
    if (length !== undefined && array.length !== length) throw new StateError(`${this.name(key)}: ${array.length} elements, not ${length}`);
    return array;
  }

  /** An array, each element read by `item` (with its index in error paths). */
  array<T>(key: string, item: (value: unknown, path: string, index: number) => T, length?: number): T[] {
    const v = this.get(key);
    if (!Array.isArray(v)) throw new StateError(`${this.name(key)}: not an array`);
    if (length !== undefined && v.length !== length) throw new StateError(`${this.name(key)}: ${v.length} elements, not ${length}`);
    return v.map((element, i) => item(element, `${this.name(key)}[${i}]`, i));
  }

  /** A field as it is, for a part that reads it itself (a device's own state). */
  value(key: string): unknown {
    return this.get(key);
  }

  /** A nested object. */
  object(key: string): StateReader {
    return new StateReader(this.get(key), this.name(key));
  }

  /** True if the field is there (optional parts such as the timing model). */
  has(key: string): boolean {
    return Object.prototype.hasOwnProperty.call(this.fields, key) && this.fields[key] !== undefined;
  }
}

/** Reads an array element that must be a bigint. */
export function bigintItem(value: unknown, path: string): bigint {
  if (typeof value !== 'bigint') throw new StateError(`${path}: not a bigint`);
  return value;
}

/** Reads an array element that must be an integer in [min, max]. */
export function integerItem(min: number, max: number): (value: unknown, path: string) => number {
  return (value, path) => {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) throw new StateError(`${path}: not an integer in [${min}, ${max}]`);
    return value;
  };
}

/** Reads an array element that must be a Uint8Array. */
export function bytesItem(value: unknown, path: string): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new StateError(`${path}: not bytes`);
  return value;
}
