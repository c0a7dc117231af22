// Tests of the Linux Image header parser and of where a direct boot puts kernel, initrd and device tree.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Bus } from '../memory/bus.js';
import { RamRegion } from '../memory/ram.js';
import { layoutMachine, type MachineLayout } from './address-map.js';
import { cells, nodeAt, readFdt, strings } from './fdt-reader.test.js';
import {
  BootImageError,
  DTB_ALIGNMENT,
  INITRD_ALIGNMENT,
  KERNEL_ALIGNMENT,
  loadLinuxBoot,
  parseLinuxImage,
  planLinuxBoot,
  prepareLinuxBoot,
  type Placement,
} from './linux-image.js';

const MiB = 1024 * 1024;

/** An Image with a real-looking header (version 0.2, both magics) followed by `body` bytes of code. */
interface ImageOptions {
  imageSize?: number;
  body?: number;
  flags?: bigint;
  magic?: boolean;
  magic2?: boolean;
}

function makeImage(options: ImageOptions = {}): Uint8Array {
  const bytes = new Uint8Array(64 + (options.body ?? 4096));
  const v = new DataView(bytes.buffer);
  v.setUint32(0, 0x0000006f, true); // a jump over the header, as head.S begins
  v.setBigUint64(8, 0x200000n, true);
  v.setBigUint64(16, BigInt(options.imageSize ?? 3 * MiB), true);
  v.setBigUint64(24, options.flags ?? 0n, true);
  v.setUint32(32, 2, true); // version 0.2
  if (options.magic ?? true) bytes.set(new TextEncoder().encode('RISCV'), 48);
  if (options.magic2 ?? true) bytes.set([0x52, 0x53, 0x43, 0x05], 56);
  for (let i = 64; i < bytes.length; i++) bytes[i] = i & 0xff;
  return bytes;
}

function layout(...nodeMiB: number[]): MachineLayout {
  return layoutMachine({ harts: nodeMiB.length, nodes: nodeMiB.map((m, i) => ({ memoryBytes: m * MiB, harts: [i] })) });
}

test('the header fields are read', () => {
  const image = parseLinuxImage(makeImage({ imageSize: 5 * MiB }));
  assert.equal(image.textOffset, 0x200000);
  assert.equal(image.imageSize, 5 * MiB);
  assert.deepEqual(image.version, { major: 0, minor: 2 });
  assert.equal(image.flags, 0n);
});

test('the effective size is never smaller than the file', () => {
  assert.equal(parseLinuxImage(makeImage({ imageSize: 0, body: 1000 })).imageSize, 1064);
});

test('either magic alone identifies a kernel (old headers have only the first)', () => {
  assert.doesNotThrow(() => parseLinuxImage(makeImage({ magic: false })));
  assert.doesNotThrow(() => parseLinuxImage(makeImage({ magic2: false })));
});

test('files that are not a kernel Image get a clear error', () => {
  const cases: [Uint8Array, RegExp][] = [
    [new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]), /ELF file \(vmlinux\?\)/],
    [new Uint8Array([0x1f, 0x8b, 8, 0]), /gzip-compressed/],
    [new Uint8Array(10), /shorter than the 64-byte header/],
    [makeImage({ magic: false, magic2: false }), /no "RSC\\x05" or "RISCV" magic/],
    [makeImage({ flags: 1n }), /big-endian kernel/],
    [makeImage({ imageSize: 2 ** 60 }), /image_size .* implausibly large/],
  ];
  for (const [bytes, message] of cases) {
    assert.throws(() => parseLinuxImage(bytes), (e: unknown) => e instanceof BootImageError && message.test(e.message));
  }
});

test('kernel at RAM base + 2 MiB, device tree at the top, initrd under it', () => {
  const plan = planLinuxBoot(layout(64), { kernelBytes: 20 * MiB, initrdBytes: 8 * MiB + 5, dtbBytes: 4000 });
  assert.deepEqual(plan.kernel, { base: 0x8020_0000, size: 20 * MiB });
  assert.equal(plan.entry, 0x8020_0000);
  assert.deepEqual(plan.dtb, { base: 0x83e0_0000, size: 4000 });
  assert.deepEqual(plan.initrd, { base: 0x83e0_0000 - 8 * MiB - 4096, size: 8 * MiB + 5 });
});

test('without an initrd there is no initrd placement', () => {
  const plan = planLinuxBoot(layout(32), { kernelBytes: MiB, dtbBytes: 4000 });
  assert.equal(plan.initrd, undefined);
});

test('with several nodes everything goes in the first', () => {
  const plan = planLinuxBoot(layout(32, 64), { kernelBytes: MiB, initrdBytes: MiB, dtbBytes: 4000 });
  assert.ok(plan.dtb.base + plan.dtb.size <= 0x8000_0000 + 32 * MiB);
});

test('a boot that does not fit says what and how much memory would do', () => {
  assert.throws(
    () => planLinuxBoot(layout(32), { kernelBytes: 20 * MiB, initrdBytes: 12 * MiB, dtbBytes: 4000 }),
    (e: unknown) =>
      e instanceof BootImageError &&
      e.message ===
        'kernel (20 MiB at 0x80200000), initrd (12 MiB), device tree (3.9 KiB, 2 MiB aligned at the top) do not fit ' +
          "in node 0's 32 MiB (0x80000000-0x82000000): give node 0 at least 35 MiB",
  );
  assert.throws(() => planLinuxBoot(layout(16), { kernelBytes: MiB, dtbBytes: 3 * MiB }), /exceeds 2 MiB/);
  assert.throws(() => planLinuxBoot(layout(16), { kernelBytes: MiB, dtbBytes: 4000 }, 0x1000), /not 2 MiB aligned/);
});

function overlap(a: Placement, b: Placement): boolean {
  return a.base < b.base + b.size && b.base < a.base + a.size;
}

test('any plan is aligned, inside node 0 and free of overlaps, and the advice in any refusal works', () => {
  const sizes = fc.record({
    node: fc.integer({ min: 16, max: 256 }),
    kernel: fc.integer({ min: 4096, max: 64 * MiB }),
    initrd: fc.integer({ min: 0, max: 128 * MiB }),
    dtb: fc.integer({ min: 40, max: 2 * MiB }),
  });
  fc.assert(
    fc.property(sizes, ({ node, kernel, initrd, dtb }) => {
      const want = { kernelBytes: kernel, initrdBytes: initrd, dtbBytes: dtb };
      let plan;
      try {
        plan = planLinuxBoot(layout(node), want);
      } catch (e) {
        assert.ok(e instanceof BootImageError);
        const advised = /at least (\d+) MiB/.exec(e.message);
        assert.ok(advised !== null, e.message);
        plan = planLinuxBoot(layout(Number(advised[1])), want);
        node = Number(advised[1]);
      }
      const end = 0x8000_0000 + node * MiB;
      const parts = [plan.kernel, plan.dtb, ...(plan.initrd === undefined ? [] : [plan.initrd])];
      for (const p of parts) assert.ok(p.base >= 0x8000_0000 && p.base + p.size <= end);
      for (let i = 0; i < parts.length; i++) for (let j = i + 1; j < parts.length; j++) assert.ok(!overlap(parts[i]!, parts[j]!));
      assert.equal(plan.kernel.base % KERNEL_ALIGNMENT, 0);
      assert.equal(plan.dtb.base % DTB_ALIGNMENT, 0);
      if (plan.initrd !== undefined) assert.equal(plan.initrd.base % INITRD_ALIGNMENT, 0);
    }),
  );
});

test('prepare and load: the device tree points at the initrd, and every part lands in RAM', () => {
  const machine = layout(32);
  const kernel = makeImage({ body: 5000 });
  const initrd = new Uint8Array(3000).map((_, i) => (i * 7) & 0xff);
  const boot = prepareLinuxBoot(machine, { kernel, initrd }, { bootargs: 'console=ttyS0' });
  const chosen = nodeAt(readFdt(boot.dtb).root, '/chosen')!;
  const start = boot.plan.initrd!.base;
  assert.deepEqual(cells(chosen.props.get('linux,initrd-start')), [0, start]);
  assert.deepEqual(cells(chosen.props.get('linux,initrd-end')), [0, start + initrd.length]);
  assert.deepEqual(strings(chosen.props.get('bootargs')), ['console=ttyS0']);
  assert.equal(boot.plan.dtb.size, boot.dtb.length);

  const bus = new Bus();
  const ram = new RamRegion(0, machine.nodes[0]!.base, machine.nodes[0]!.size);
  bus.addRam(ram);
  loadLinuxBoot(bus, boot);
  const at = (p: Placement, n: number): Uint8Array => ram.u8.subarray(p.base - ram.base, p.base - ram.base + n);
  assert.deepEqual(at(boot.plan.kernel, kernel.length), kernel);
  assert.deepEqual(at(boot.plan.initrd!, initrd.length), initrd);
  assert.deepEqual(at(boot.plan.dtb, boot.dtb.length), boot.dtb);
});

test('an empty initrd file is treated as none', () => {
  const boot = prepareLinuxBoot(layout(32), { kernel: makeImage(), initrd: new Uint8Array(0) });
  assert.equal(boot.plan.initrd, undefined);
  assert.equal(nodeAt(readFdt(boot.dtb).root, '/chosen')!.props.has('linux,initrd-start'), false);
});

test('loading into a bus without that RAM is refused before writing', () => {
  const boot = prepareLinuxBoot(layout(32), { kernel: makeImage() });
  assert.throws(() => loadLinuxBoot(new Bus(), boot), /kernel at 0x80200000 is outside RAM/);
});
