// The import direction of DESIGN.md's layers, checked on every source file.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');

/** What each layer may import (besides itself). Layers not named here may not be imported by anyone below. */
const ALLOWED: Record<string, readonly string[]> = {
  isa: [],
  memory: ['isa'],
  cpu: ['isa', 'memory'],
  devices: ['isa', 'memory'],
  timing: ['isa', 'memory'],
  board: ['isa', 'memory', 'cpu', 'devices', 'timing'],
  monitor: ['isa', 'memory', 'cpu', 'devices', 'timing', 'board'],
  net: ['isa', 'memory', 'devices'],
  dsm: ['isa', 'memory', 'cpu', 'devices', 'timing', 'board', 'monitor'],
  host: ['isa', 'memory', 'cpu', 'devices', 'timing', 'board', 'monitor', 'net', 'dsm'],
  guest: ['isa', 'memory', 'cpu', 'devices', 'timing', 'board', 'monitor', 'net', 'dsm', 'host'],
  control: ['isa', 'memory', 'cpu', 'devices', 'timing', 'board', 'monitor', 'net', 'dsm', 'host'],
  experiments: ['isa', 'memory', 'cpu', 'devices', 'timing', 'board', 'monitor', 'net', 'dsm', 'host', 'guest'],
  cli: ['isa', 'memory', 'cpu', 'devices', 'timing', 'board', 'monitor', 'net', 'dsm', 'host', 'guest', 'control', 'experiments'],
  bench: ['isa', 'memory', 'cpu', 'devices', 'timing', 'board', 'monitor', 'net', 'dsm', 'host', 'guest', 'control', 'experiments', 'cli'],
  fuzz: ['isa', 'memory', 'cpu', 'devices', 'timing', 'board', 'monitor', 'net', 'dsm', 'host', 'guest', 'control', 'experiments', 'cli'],
  // The browser's code (the tab's page and its worker): the machine layers and browser packages, never Node.
  web: ['isa', 'memory', 'cpu', 'devices', 'timing', 'board'],
};

/** Only these layers talk to the host (files, terminals, clocks, processes): the hardware stays portable. */
const MAY_USE_NODE = new Set(['host', 'control', 'cli', 'guest', 'experiments', 'bench', 'fuzz']);
/** Layers that run in a browser: they may import packages (a terminal), never Node's built-ins. */
const MAY_USE_PACKAGES = new Set([...MAY_USE_NODE, 'web']);

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') ? [path] : [];
  });
}

/** Every module specifier of static imports, re-exports and dynamic imports. */
export function importsOf(text: string): string[] {
  const found: string[] = [];
  const pattern = /(?:^|\n)\s*(?:import|export)\b[^'"]*?\bfrom\s*['"]([^'"]+)['"]|(?:^|\n)\s*import\s*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;
  for (const m of text.matchAll(pattern)) found.push(m[1] ?? m[2] ?? m[3]);
  return found;
}

function layerOf(file: string): string {
  return relative(SRC, file).split(/[\\/]/)[0];
}

test('the import scanner sees static, re-export, side-effect and dynamic imports', () => {
  const text = "import { a } from './a.js';\nexport { b } from '../cpu/b.js';\nimport 'node:fs';\nconst m = await import('node:os');\nimport type {\n  C,\n} from '../devices/c.js';";
  assert.deepEqual(importsOf(text), ['./a.js', '../cpu/b.js', 'node:fs', 'node:os', '../devices/c.js']);
});

test('every source file imports only from its own layer or the layers below it', () => {
  const problems: string[] = [];
  const files = sourceFiles(SRC);
  assert.ok(files.length > 50, 'the scan found the sources');
  for (const file of files) {
    const layer = layerOf(file);
    const allowed = ALLOWED[layer];
    const name = relative(SRC, file);
    if (allowed === undefined) { problems.push(`${name}: layer '${layer}' is not in the layer table`); continue; }
    for (const spec of importsOf(readFileSync(file, 'utf8'))) {
      if (spec.startsWith('node:') || !spec.startsWith('.')) {
        const builtin = spec.startsWith('node:');
        if (builtin && !MAY_USE_NODE.has(layer)) problems.push(`${name}: '${spec}' (only ${[...MAY_USE_NODE].join(', ')} may use Node)`);
        if (!builtin && !MAY_USE_PACKAGES.has(layer)) problems.push(`${name}: package '${spec}' (the hardware imports no packages)`);
        continue;
      }
      const target = layerOf(resolve(dirname(file), spec));
      if (target !== layer && !allowed.includes(target)) problems.push(`${name}: imports ${target} ('${spec}')`);
    }
  }
  assert.deepEqual(problems, []);
});
