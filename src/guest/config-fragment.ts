// Kconfig fragments (guest/kernel.config, guest/busybox.config): parsing, applying and checking that every line took.

/** One line of a fragment: `CONFIG_X=value` sets a symbol, `# CONFIG_X is not set` clears it. */
export interface ConfigSetting {
  symbol: string;
  /** The value as written in .config (`y`, `32`, `"text"`), or undefined for "is not set". */
  value: string | undefined;
  line: number;
}

export class ConfigFragmentError extends Error {}

const SET = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/;
const UNSET = /^# (CONFIG_[A-Za-z0-9_]+) is not set$/;

/** The settings of a fragment, in order; other comments and blank lines are skipped, anything else is an error. */
export function parseFragment(text: string, name = 'fragment'): ConfigSetting[] {
  const settings: ConfigSetting[] = [];
  const seen = new Map<string, number>();
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    const number = index + 1;
    const set = SET.exec(line);
    const unset = UNSET.exec(line);
    let setting: ConfigSetting | undefined;
    if (set) setting = { symbol: set[1]!, value: set[2]!, line: number };
    else if (unset) setting = { symbol: unset[1]!, value: undefined, line: number };
    else if (line === '' || line.startsWith('#')) return;
    else throw new ConfigFragmentError(`${name}:${number}: not a Kconfig line: ${raw}`);
    const previous = seen.get(setting.symbol);
    if (previous !== undefined) throw new ConfigFragmentError(`${name}:${number}: ${setting.symbol} already set on line ${previous}`);
    seen.set(setting.symbol, number);
    settings.push(setting);
  });
  return settings;
}

/** The symbols of a .config: set ones with their value, "is not set" ones as undefined. */
export function parseDotConfig(text: string): Map<string, string | undefined> {
  const values = new Map<string, string | undefined>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const set = SET.exec(line);
    if (set) values.set(set[1]!, set[2]!);
    const unset = UNSET.exec(line);
    if (unset) values.set(unset[1]!, undefined);
  }
  return values;
}

/**
 * The fragment lines that did not take in a .config: a symbol asked set but missing or with another value
 * (a typo, an unmet dependency), or asked off but set. A symbol asked off may be absent (it was invisible).
 */
export function checkFragment(settings: readonly ConfigSetting[], dotConfig: string): string[] {
  const actual = parseDotConfig(dotConfig);
  const problems: string[] = [];
  for (const s of settings) {
    const got = actual.get(s.symbol);
    if (s.value === undefined) {
      if (got !== undefined && got !== 'n') problems.push(`line ${s.line}: ${s.symbol} should be off but is ${got}`);
    } else if (got !== s.value) {
      problems.push(`line ${s.line}: ${s.symbol}=${s.value} did not take (${got === undefined ? 'not set' : `got ${got}`})`);
    }
  }
  return problems;
}

/**
 * A .config with the fragment's settings replacing the same symbols' lines (or appended), for tools whose
 * `oldconfig` then resolves dependencies (busybox has no KCONFIG_ALLCONFIG).
 */
export function applyFragment(dotConfig: string, settings: readonly ConfigSetting[]): string {
  const wanted = new Map(settings.map((s) => [s.symbol, s]));
  const render = (s: ConfigSetting) => (s.value === undefined ? `# ${s.symbol} is not set` : `${s.symbol}=${s.value}`);
  const done = new Set<string>();
  const lines = dotConfig.split('\n').map((raw) => {
    const line = raw.trim();
    const symbol = SET.exec(line)?.[1] ?? UNSET.exec(line)?.[1];
    const s = symbol === undefined ? undefined : wanted.get(symbol);
    if (s === undefined) return raw;
    done.add(s.symbol);
    return render(s);
  });
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  for (const s of settings) if (!done.has(s.symbol)) lines.push(render(s));
  return `${lines.join('\n')}\n`;
}
