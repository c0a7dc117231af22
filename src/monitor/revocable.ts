// A cell's state objects as revocable proxies: once the cell has failed, any access to them throws, so code
// that reaches into a dead cell's state fails loudly instead of reading memory that is gone (docs/cell-rpc.md).

/** Thrown by any access to the state of a cell that has failed. */
export class DeadCellError extends Error {
  constructor(readonly cell: number) {
    super(`cell ${cell} has failed: its state is unreachable`);
    this.name = 'DeadCellError';
  }
}

/**
 * Objects whose target has internal slots that a proxy does not carry (a Map's entries, a typed array's
 * bytes): their methods and accessors must run on the target itself, after the check.
 */
function slotted(target: object): boolean {
  return target instanceof Map || target instanceof Set || target instanceof WeakMap || target instanceof WeakSet || ArrayBuffer.isView(target) || target instanceof ArrayBuffer || target instanceof Date;
}

/**
 * The registry through which each cell makes the state other cells could reach: `create` hands out a proxy
 * that checks, on every operation, whether its cell has failed. Objects read through a proxy (a field's
 * object, a method's result) come back as proxies of the same cell, so a reference taken from inside a
 * cell's state dies with it too. Meant for state objects, not hot paths: every access pays a trap.
 */
export class CellObjects {
  private readonly failed = new Set<number>();
  /** Per cell: its generation, one more at each `readmit`; a proxy lives only in the generation it was made in. */
  private readonly generation: number[];
  private readonly made: number[];
  /** Per cell, target → its proxy, so that an object read twice is the same proxy. */
  private readonly proxies: WeakMap<object, object>[];
  /** Every proxy handed out, with its cell and generation: a proxy stored back into state is kept as it is, not wrapped again. */
  private readonly handedOut = new WeakMap<object, { cell: number; generation: number }>();

  constructor(readonly cells: number) {
    this.generation = new Array<number>(cells).fill(0);
    this.made = new Array<number>(cells).fill(0);
    this.proxies = Array.from({ length: cells }, () => new WeakMap());
  }

  /** `target` as state of cell `cell`: the proxy to keep and hand out in its place. */
  create<T extends object>(cell: number, target: T): T {
    if (!Number.isInteger(cell) || cell < 0 || cell >= this.cells) throw new RangeError(`no cell ${cell}: there are cells 0 to ${this.cells - 1}`);
    this.live(cell);
    return this.wrap(cell, target);
  }

  /** Cell `cell` has failed: every proxy of its state throws DeadCellError from now on. Returns how many it made. */
  revoke(cell: number): number {
    this.failed.add(cell);
    return this.made[cell]!;
  }

  isRevoked(cell: number): boolean {
    return this.failed.has(cell);
  }

  /**
   * Cell `cell`, revoked, is made again (its hardware repaired, it rejoins): `create` works for it once more,
   * for a new generation of its state. Every proxy of its old state keeps throwing DeadCellError.
   */
  readmit(cell: number): void {
    if (!this.failed.has(cell)) throw new Error(`cell ${cell} has not failed: there is nothing to readmit`);
    this.failed.delete(cell);
    this.generation[cell]!++;
    this.proxies[cell] = new WeakMap();
  }

  private live(cell: number, generation = this.generation[cell]!): void {
    if (this.failed.has(cell) || generation !== this.generation[cell]) throw new DeadCellError(cell);
  }

  private wrap<T extends object>(cell: number, target: T): T {
    const known = this.proxies[cell]!.get(target);
    if (known !== undefined) return known as T;
    // Already one of ours (a proxy read out and stored back, as `m.view = m.view.filter(…)` does): wrapping it
    // again would nest a proxy per round trip, and every access would pay each level.
    const generation = this.generation[cell]!;
    const mine = this.handedOut.get(target);
    if (mine?.cell === cell && mine.generation === generation) return target;
    const own = this;
    const slots = slotted(target);
    /** A value read out of the target: objects stay behind the cell's check; methods run on the target after it. */
    const out = (value: unknown, key: PropertyKey): unknown => {
      if (typeof value === 'function') {
        const bound = slots && typeof key !== 'symbol';
        return function (this: unknown, ...args: unknown[]): unknown {
          own.live(cell, generation);
          const self = this === proxy || bound ? target : this;
          return own.out(cell, Reflect.apply(value as (...a: unknown[]) => unknown, self, args));
        };
      }
      if (value !== null && typeof value === 'object') {
        const d = Reflect.getOwnPropertyDescriptor(target, key);
        // A proxy's get must return a frozen property's own value (ECMAScript §10.5.8 invariants).
        if (d !== undefined && d.configurable === false && d.writable === false) return value;
        return own.wrap(cell, value);
      }
      return value;
    };
    const proxy: T = new Proxy(target, {
      get: (t, key) => {
        this.live(cell, generation);
        // Accessors run on the target (after the check), as a class's private fields and a Map's slots need.
        return out(Reflect.get(t, key), key);
      },
      set: (t, key, value) => (this.live(cell, generation), Reflect.set(t, key, value)),
      has: (t, key) => (this.live(cell, generation), Reflect.has(t, key)),
      deleteProperty: (t, key) => (this.live(cell, generation), Reflect.deleteProperty(t, key)),
      ownKeys: (t) => (this.live(cell, generation), Reflect.ownKeys(t)),
      getOwnPropertyDescriptor: (t, key) => (this.live(cell, generation), Reflect.getOwnPropertyDescriptor(t, key)),
      defineProperty: (t, key, descriptor) => (this.live(cell, generation), Reflect.defineProperty(t, key, descriptor)),
      getPrototypeOf: (t) => (this.live(cell, generation), Reflect.getPrototypeOf(t)),
      setPrototypeOf: (t, prototype) => (this.live(cell, generation), Reflect.setPrototypeOf(t, prototype)),
      isExtensible: (t) => (this.live(cell, generation), Reflect.isExtensible(t)),
      preventExtensions: (t) => (this.live(cell, generation), Reflect.preventExtensions(t)),
      apply: (t, self, args) => (this.live(cell, generation), this.out(cell, Reflect.apply(t as (...a: unknown[]) => unknown, self, args))),
      construct: (t, args, newTarget) => (this.live(cell, generation), this.wrap(cell, Reflect.construct(t as new (...a: unknown[]) => object, args, newTarget))),
    });
    this.proxies[cell]!.set(target, proxy);
    this.handedOut.set(proxy, { cell, generation });
    this.made[cell]!++;
    return proxy;
  }

  /** A method's result: an object it returns is state of the same cell. */
  private out(cell: number, value: unknown): unknown {
    return value !== null && typeof value === 'object' ? this.wrap(cell, value) : value;
  }
}
