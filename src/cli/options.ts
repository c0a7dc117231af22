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


const ON_OFF = ['on', 'off', 'true', 'false'];

/**
 * `file=F[,readonly=on|off][,snapshot=on|off][,overlay=FILE][,format=raw]`, or just a file name. snapshot=on
 * (QEMU's word) makes the disk copy-on-write over F with the changes in memory; overlay=FILE keeps them in
 * FILE instead (snapshot=on may be given with it, and means the same).
 */
export function parseDrive(text: string): DriveSpec {
  const parts = text.split(',');
  let file: string | undefined;
  let readOnly = false;
  let snapshot = false;
  let overlay: string | undefined;
  const onOff = (key: string, value: string): boolean => {
    if (!ON_OFF.includes(value)) throw new UsageError(`--drive: ${key} must be on or off, not '${value}'`);
    return value === 'on' || value === 'true';
  };
  for (const part of parts) {
    const eq = part.indexOf('=');
    if (eq < 0 && file === undefined && parts.length === 1) { file = part; continue; }
    const key = part.slice(0, eq);
    const value = part.slice(eq + 1);
    if (key === 'file') file = value;
    else if (key === 'readonly') readOnly = onOff(key, value);
    else if (key === 'snapshot') snapshot = onOff(key, value);
    else if (key === 'overlay') {
      if (value === '') throw new UsageError('--drive: overlay needs a file name (overlay=FILE)');
      overlay = value;
    } else if (key === 'format') {
      if (value !== 'raw') throw new UsageError(`--drive: only format=raw is supported, not '${value}'`);
    } else throw new UsageError(`--drive: unknown key '${key}' (known: file, readonly, snapshot, overlay, format)`);
  }
  if (file === undefined || file === '') throw new UsageError(`--drive needs file=PATH, got '${text}'`);
  if (readOnly && (snapshot || overlay !== undefined)) {
    throw new UsageError(`--drive: readonly=on and ${overlay === undefined ? 'snapshot=on' : 'overlay='} exclude each other (a copy-on-write disk is written; its base never is)`);
  }
  const spec: DriveSpec = { file, readOnly };
  if (snapshot || overlay !== undefined) spec.snapshot = true;
  if (overlay !== undefined) spec.overlay = overlay;
  return spec;
}
