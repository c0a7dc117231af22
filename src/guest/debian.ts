// Debian packages without root: apt-get with its own sources, lists and archives in the cache, and dpkg -x.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { StepLog } from './steps.js';
import { compareDebianVersions } from './versions.js';

/** One apt source: the archive URIs, suites and components (deb822 fields, apt sources.list(5)). */
export interface AptSource {
  uris: string[];
  suites: string[];
  components: string[];
  signedBy?: string;
}

const SOURCES_LIST = '/etc/apt/sources.list';
/** The host's package database, which apt-cache policy also reads. */
const DPKG_STATUS = '/var/lib/dpkg/status';
/** apt-cache's answers kept for the same lists (PrivateApt.query). */
const ANSWERS_FILE = 'answers.json';
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
  return mergeSources(forRelease(all, release));
}

/**
 * Each archive suite once. The host may name one twice (a `deb` and a `deb-src` line, or the same archive
 * in sources.list and in a .sources file), and our sources ask for binaries and sources of each entry,
 * so apt would warn that a target is configured multiple times. Entries of one URI and suite are merged
 * (their components joined, the first Signed-By kept); then the suites of one URI with the same components
 * and key share a stanza again.
 */
export function mergeSources(sources: readonly AptSource[]): AptSource[] {
  const bySuite = new Map<string, AptSource>();
  for (const source of sources) {
    for (const rawUri of source.uris) {
      const uri = rawUri.replace(/\/+$/, '');
      for (const suite of source.suites) {
        const key = `${uri} ${suite}`;
        const seen = bySuite.get(key);
        if (seen === undefined) bySuite.set(key, { uris: [uri], suites: [suite], components: [...source.components], signedBy: source.signedBy });
        else {
          for (const c of source.components) if (!seen.components.includes(c)) seen.components.push(c);
          seen.signedBy ??= source.signedBy;
        }
      }
    }
  }
  const stanzas = new Map<string, AptSource>();
  for (const entry of bySuite.values()) {
    const key = `${entry.uris[0]} ${entry.components.join(' ')} ${entry.signedBy ?? ''}`;
    const stanza = stanzas.get(key);
    if (stanza === undefined) stanzas.set(key, { ...entry, suites: [...entry.suites] });
    else stanza.suites.push(...entry.suites);
  }
  return [...stanzas.values()];
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

  private listsDir(): string {
    return join(this.dir, 'lists');
  }

  /** True when an earlier `update` left package lists to read. */
  hasLists(): boolean {
    return existsSync(this.listsDir()) && readdirSync(this.listsDir()).some((name) => /_(?:Packages|Sources)(?:\.[a-z0-9]+)?$/.test(name));
  }

  /**
   * `apt-cache` over our lists, offline (the lists of the last update): its standard output, or '' when
   * it cannot answer (no lists yet). apt-cache reads every list each time (about 0.1 s): answers are kept
   * in `answers.json`, valid while the lists and the host's package database are the same files.
   */
  query(args: readonly string[]): string {
    if (!this.hasLists()) return '';
    const memoFile = join(this.dir, ANSWERS_FILE);
    const state = this.listsState();
    let memo: { state: string; answers: Record<string, string> } = { state, answers: {} };
    try {
      const kept = JSON.parse(readFileSync(memoFile, 'utf8')) as typeof memo;
      if (kept.state === state) memo = kept;
    } catch {
      // No answers kept yet, or a file cut short: ask apt-cache.
    }
    const key = args.join(' ');
    const known = memo.answers[key];
    if (known !== undefined) return known;
    const options = [...this.options(), '-o', 'Dir::Cache::pkgcache=', '-o', 'Dir::Cache::srcpkgcache='];
    let text: string;
    try {
      text = execFileSync('apt-cache', [...options, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 * 2 ** 20 });
    } catch (error) {
      return String((error as { stdout?: string }).stdout ?? '');
    }
    memo.answers[key] = text;
    // Written beside and renamed: a reader never sees half a file.
    const partial = `${memoFile}.${process.pid}`;
    writeFileSync(partial, JSON.stringify(memo));
    renameSync(partial, memoFile);
    return text;
  }

  /** Names, sizes and times of the package lists and of dpkg's status file: what apt-cache's answers depend on. */
  private listsState(): string {
    const files = readdirSync(this.listsDir()).sort().map((name) => join(this.listsDir(), name));
    return [...files, DPKG_STATUS]
      .map((path) => {
        try {
          const stat = statSync(path);
          return `${path} ${stat.size} ${stat.mtimeMs}`;
        } catch {
          return `${path} -`;
        }
      })
      .join('\n');
  }

  /** The candidates of binary packages (`apt-cache policy`): name → version; names without one are absent. */
  candidates(names: readonly string[]): Map<string, string> {
    return names.length === 0 ? new Map() : parsePolicyCandidates(this.query(['policy', ...names]));
  }

  /** The newest version of each source package in the archive (`apt-cache showsrc --only-source`). */
  sourceCandidates(names: readonly string[]): Map<string, string> {
    return names.length === 0 ? new Map() : newestSourceVersions(this.query(['showsrc', '--only-source', ...names]));
  }

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
      const hadLists = this.hasLists();
      await log.run('apt-get', [...this.options(), '-q', 'update']).catch((error: Error) => {
        // Offline with lists from an earlier build: build from what they say rather than not at all.
        if (hadLists) log.write(`apt-get update failed (${error.message}); going on with the package lists of the last update\n`);
        else throw new Error(`apt-get update failed (is the Debian archive reachable?): ${error.message}`);
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

/** `Candidate:` of each package in `apt-cache policy` output; `(none)` is left out. */
export function parsePolicyCandidates(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let current: string | undefined;
  for (const line of text.split('\n')) {
    const name = /^(\S+):$/.exec(line);
    if (name) current = name[1];
    const candidate = /^\s+Candidate:\s+(\S+)/.exec(line);
    if (candidate && current !== undefined && candidate[1] !== '(none)') out.set(current, candidate[1]!);
  }
  return out;
}

/** The newest `Version:` of each `Package:` in `apt-cache showsrc` output (one record per archive entry). */
export function newestSourceVersions(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const record of text.split(/\n\s*\n/)) {
    const name = /^Package:\s*(\S+)/m.exec(record)?.[1];
    const version = /^Version:\s*(\S+)/m.exec(record)?.[1];
    if (name === undefined || version === undefined) continue;
    const seen = out.get(name);
    if (seen === undefined || compareDebianVersions(version, seen) > 0) out.set(name, version);
  }
  return out;
}

/** Installed versions of binary packages (`dpkg-query`): name → version; packages not installed are absent. */
export function installedVersions(names: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  if (names.length === 0) return out;
  let text: string;
  try {
    text = execFileSync('dpkg-query', ['-W', '-f', '${Package}\t${Status}\t${Version}\n', ...names], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch (error) {
    // Exit status 1 when some package is unknown; the others are still listed.
    text = String((error as { stdout?: string }).stdout ?? '');
  }
  for (const line of text.split('\n')) {
    const [name, status, version] = line.split('\t');
    if (name && version && status === 'install ok installed') out.set(name, version);
  }
  return out;
}
