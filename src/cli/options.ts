// Parsing of command-line values shared by the commands: sizes, counts, drive specifications.

import type { DriveSpec } from '../host/drives.js';

/** A mistake in what the user typed: printed as one line, exit status 2 (as QEMU does for bad options). */
export class UsageError extends Error {}

const UNITS: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30 };

/** "512M", "2G", "65536K" or a byte count; a bare number below 64 Ki is taken as MiB, as QEMU's -m does. */
export function parseSize(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMG]?)(?:i?B)?$/i.exec(text.trim());
  if (m === null) throw new UsageError(`${what}: '${text}' is not a size (try 512M or 2G)`);
  const unit = m[2].toUpperCase();
  let bytes = Number(m[1]) * UNITS[unit];
  if (unit === '' && bytes < 65536) bytes *= 2 ** 20;
  return Math.floor(bytes);
}

/** A byte count as the user would write it: "1 KiB", "512 MiB", "1.5 GiB", "1000 bytes". */
export function describeSize(bytes: number): string {
  for (const [unit, size] of [['GiB', UNITS.G], ['MiB', UNITS.M], ['KiB', UNITS.K]] as const) {
    if (bytes >= size) return `${Number((bytes / size).toFixed(2))} ${unit}`;
  }
  return `${bytes} bytes`;
}

/** MIRRORBALL_TRANSLATE=0 turns the block translator off, to bisect it; anything else leaves it on. */
export function translationWanted(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.MIRRORBALL_TRANSLATE !== '0';
}

export function parseCount(text: string, what: string, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`${what} must be an integer from ${min} to ${max}, not '${text}'`);
  return n;
}


/** `file=F[,readonly=on|off][,format=raw]`, or just a file name. */
export function parseDrive(text: string): DriveSpec {
  const parts = text.split(',');
  let file: string | undefined;
  let readOnly = false;
  for (const part of parts) {
    const eq = part.indexOf('=');
    if (eq < 0 && file === undefined && parts.length === 1) { file = part; continue; }
    const key = part.slice(0, eq);
    const value = part.slice(eq + 1);
    if (key === 'file') file = value;
    else if (key === 'readonly') {
      if (!['on', 'off', 'true', 'false'].includes(value)) throw new UsageError(`--drive: readonly must be on or off, not '${value}'`);
      readOnly = value === 'on' || value === 'true';
    } else if (key === 'format') {
      if (value !== 'raw') throw new UsageError(`--drive: only format=raw is supported, not '${value}'`);
    } else throw new UsageError(`--drive: unknown key '${key}' (known: file, readonly, format)`);
  }
  if (file === undefined || file === '') throw new UsageError(`--drive needs file=PATH, got '${text}'`);
  return { file, readOnly };
}
