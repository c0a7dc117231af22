// Debian packages without root: apt-get with its own sources, lists and archives in the cache, and dpkg -x.

import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { StepLog } from './steps.js';

/** One apt source: the archive URIs, suites and components (deb822 fields, apt sources.list(5)). */
export interface AptSource {
  uris: string[];
  suites: string[];
  components: string[];
  signedBy?: string;
}

const SOURCES_LIST = '/etc/apt/sources.list';
const SOURCES_PARTS = '/etc/apt/sources.list.d';

/**
 * The host's Debian archives for `release` (its suites `release`, `release-updates`, `release-security`...),
 * read from the one-line and deb822 files of /etc/apt. The project names no archive itself: the build uses
 * the mirror the machine is already configured with. $MIRRORBALL_APT_SOURCES names a deb822 file to use instead.
 */
export function hostAptSources(release: string): AptSource[] {
  const override = process.env.MIRRORBALL_APT_SOURCES;
  const texts: Array<{ text: string; deb822: boolean }> = [];
  if (override) texts.push({ text: readFileSync(override, 'utf8'), deb822: true });
  else {
    if (existsSync(SOURCES_LIST)) texts.push({ text: readFileSync(SOURCES_LIST, 'utf8'), deb822: false });
    if (existsSync(SOURCES_PARTS)) {
      for (const name of readdirSync(SOURCES_PARTS).sort()) {
        if (name.endsWith('.list')) texts.push({ text: readFileSync(join(SOURCES_PARTS, name), 'utf8'), deb822: false });
        if (name.endsWith('.sources')) texts.push({ text: readFileSync(join(SOURCES_PARTS, name), 'utf8'), deb822: true });
      }
    }
  }
  const all = texts.flatMap(({ text, deb822 }) => (deb822 ? parseDeb822Sources(text) : parseOneLineSources(text)));
  return forRelease(all, release);
}

/** Keeps the sources of one release, each with only that release's suites. */
export function forRelease(sources: readonly AptSource[], release: string): AptSource[] {
  const ours = (suite: string) => suite === release || suite.startsWith(`${release}-`) || suite.startsWith(`${release}/`);
  const kept: AptSource[] = [];
  for (const source of sources) {
    const suites = source.suites.filter(ours);
    if (suites.length > 0) kept.push({ ...source, suites });
  }
  return kept;
}

/** `deb [options] URI SUITE COMPONENT...` lines (deb-src lines name the same archives). */
export function parseOneLineSources(text: string): AptSource[] {
  const sources: AptSource[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    const match = /^(deb|deb-src)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (!match) continue;
    const signedBy = /(?:^|\s)signed-by=(\S+)/.exec(match[2] ?? '')?.[1];
    sources.push({ uris: [match[3]!], suites: [match[4]!], components: match[5]!.split(/\s+/).filter(Boolean), signedBy });
  }
  return sources;
}

/** deb822 stanzas (`Types:`, `URIs:`, `Suites:`, `Components:`, `Signed-By:`), skipping `Enabled: no`. */
export function parseDeb822Sources(text: string): AptSource[] {
  const sources: AptSource[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    let last: string | undefined;
    for (const raw of stanza.split('\n')) {
      if (raw.startsWith('#')) continue;
      const field = /^([A-Za-z-]+):\s*(.*)$/.exec(raw);
      if (field) {
        last = field[1]!.toLowerCase();
        fields.set(last, field[2]!.trim());
      } else if (/^\s/.test(raw) && last !== undefined) fields.set(last, `${fields.get(last)} ${raw.trim()}`.trim());
    }
    const types = (fields.get('types') ?? '').split(/\s+/);
    if (!types.includes('deb') && !types.includes('deb-src')) continue;
    if ((fields.get('enabled') ?? 'yes').toLowerCase() === 'no') continue;
    const list = (name: string) => (fields.get(name) ?? '').split(/\s+/).filter(Boolean);
    const signedBy = fields.get('signed-by');
    // An inline key block cannot be copied as a path; apt then falls back to its trusted keyrings.
    sources.push({ uris: list('uris'), suites: list('suites'), components: list('components'), signedBy: signedBy?.startsWith('/') ? signedBy : undefined });
  }
  return sources.filter((s) => s.uris.length > 0 && s.suites.length > 0);
}

/** The deb822 text of our private sources: binaries and sources of each archive. */
export function renderSources(sources: readonly AptSource[]): string {
  return sources
    .map((s) =>
      [
        'Types: deb deb-src',
        `URIs: ${s.uris.join(' ')}`,
        `Suites: ${s.suites.join(' ')}`,
        `Components: ${s.components.join(' ')}`,
        ...(s.signedBy ? [`Signed-By: ${s.signedBy}`] : []),
      ].join('\n'),
    )
    .join('\n\n')
    .concat('\n');
}

/**
 * apt-get confined to a directory: its sources, package lists and downloaded archives live there, the
 * host's package database is only read, and nothing needs root. `update` runs once per build.
 */
export class PrivateApt {
  private updated: Promise<void> | undefined;

  constructor(
    readonly dir: string,
    private readonly release: string,
  ) {}

  private options(): string[] {
    const options = [
      `Dir::Etc::SourceList=${join(this.dir, 'none.list')}`,
      `Dir::Etc::SourceParts=${join(this.dir, 'sources.list.d')}`,
      `Dir::State::Lists=${join(this.dir, 'lists')}`,
      `Dir::Cache=${join(this.dir, 'cache')}`,
      'Debug::NoLocking=1',
      'APT::Get::Assume-Yes=1',
    ];
    // As root apt downloads as the _apt user, which cannot write into a cache owned by someone else.
    if (process.getuid?.() === 0) options.push('APT::Sandbox::User=root');
    return options.flatMap((o) => ['-o', o]);
  }

  /** Writes the private sources from the host's configuration and fetches the package lists (once). */
  update(log: StepLog): Promise<void> {
    this.updated ??= (async () => {
      const sources = hostAptSources(this.release);
      if (sources.length === 0) throw new Error(`no apt source for Debian ${this.release} in /etc/apt (set MIRRORBALL_APT_SOURCES to a deb822 file)`);
      for (const sub of ['sources.list.d', 'lists/partial', 'cache/archives/partial']) mkdirSync(join(this.dir, sub), { recursive: true });
      writeFileSync(join(this.dir, 'none.list'), '');
      writeFileSync(join(this.dir, 'sources.list.d', 'mirrorball.sources'), renderSources(sources));
      await log.run('apt-get', [...this.options(), '-q', 'update']).catch((error: Error) => {
        throw new Error(`apt-get update failed (is the Debian archive reachable?): ${error.message}`);
      });
    })();
    return this.updated;
  }

  /**
   * The unpacked source of `name` at `version`, in `<into>/<name>-<version>` (unpacked once, by renaming
   * a finished tree into place, so an interrupted unpack is never taken for a complete one).
   */
  async source(log: StepLog, name: string, version: string, into: string): Promise<string> {
    // No ':' of a version's epoch in the path: make reads it as a target separator.
    const tree = join(into, `${name}-${version.replace(/[^A-Za-z0-9.+~-]/g, '_')}`);
    if (existsSync(tree)) return tree;
    await this.update(log);
    const download = join(into, `.${basename(tree)}.download`);
    rmSync(download, { recursive: true, force: true });
    mkdirSync(download, { recursive: true });
    await log.run('apt-get', [...this.options(), '-q', 'source', '--download-only', `${name}=${version}`], { cwd: download });
    const dsc = readdirSync(download).find((f) => f.endsWith('.dsc'));
    if (dsc === undefined) throw new Error(`apt-get source ${name}=${version} gave no .dsc`);
    await log.run('dpkg-source', ['--no-check', '-x', dsc, 'tree'], { cwd: download });
    renameSync(join(download, 'tree'), tree);
    rmSync(download, { recursive: true, force: true });
    return tree;
  }

  /** Downloads binary packages at exact versions into `into`, returning the .deb paths. */
  async download(log: StepLog, packages: Record<string, string>, into: string): Promise<string[]> {
    await this.update(log);
    mkdirSync(into, { recursive: true });
    const specs = Object.entries(packages).map(([name, version]) => `${name}=${version}`);
    await log.run('apt-get', [...this.options(), '-q', 'download', ...specs], { cwd: into });
    return readdirSync(into)
      .filter((f) => f.endsWith('.deb'))
      .sort()
      .map((f) => join(into, f));
  }
}

/** Unpacks .deb files into `root` with dpkg -x (no maintainer scripts, no root needed). */
export async function extractDebs(log: StepLog, debs: readonly string[], root: string): Promise<void> {
  mkdirSync(root, { recursive: true });
  for (const deb of debs) await log.run('dpkg', ['-x', deb, root]);
}
