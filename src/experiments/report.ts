// What experiments print and draw: Markdown tables and SVG bar charts, written by our own small generator.

/** The item whose `key` is the median (the lower of the middle two for an even count): an experiment's median run. */
export function medianBy<T>(items: readonly T[], key: (item: T) => number): T {
  return [...items].sort((a, b) => key(a) - key(b))[Math.floor((items.length - 1) / 2)]!;
}

/** The median of `values`, as `medianBy`. */
export function median(values: readonly number[]): number {
  return medianBy(values, (v) => v);
}

/** The smallest and largest of `values`: a figure's range. */
export function range(values: readonly number[]): [number, number] {
  return [Math.min(...values), Math.max(...values)];
}

/** A Markdown table (GitHub style); numbers are right-aligned, text left-aligned. */
export function markdownTable(headers: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const cells = rows.map((row) => row.map(String));
  const numeric = headers.map((_, c) => rows.length > 0 && rows.every((row) => typeof row[c] === 'number' || /^-?[\d.]+\s*%?$/.test(String(row[c]))));
  const widths = headers.map((h, c) => Math.max(h.length, 3, ...cells.map((row) => row[c]!.length)));
  const line = (values: readonly string[]): string =>
    `| ${values.map((v, c) => (numeric[c] ? v.padStart(widths[c]!) : v.padEnd(widths[c]!))).join(' | ')} |`;
  const rule = `| ${widths.map((w, c) => (numeric[c] ? `${'-'.repeat(w - 1)}:` : '-'.repeat(w))).join(' | ')} |`;
  return [line(headers), rule, ...cells.map(line)].join('\n') + '\n';
}

export interface Bar {
  label: string;
  value: number;
  /** Printed at the end of the bar; default: the value with `digits` decimals. */
  text?: string;
}

export interface BarPanel {
  title: string;
  bars: readonly Bar[];
  /** The axis ends at this value; default: the largest bar. */
  max?: number;
  digits?: number;
}

const FONT = 'font-family="sans-serif"';
const LABEL_WIDTH = 190;
const BAR_AREA = 330;
const VALUE_WIDTH = 110;
const BAR_HEIGHT = 20;
const BAR_GAP = 8;
const TITLE_HEIGHT = 28;
const PANEL_GAP = 18;
const MARGIN = 12;
const COLORS = ['#3b6ea8', '#c8553d', '#8a9a3b', '#7d5ba6', '#4a9c8c', '#b8860b'];

/** Text for SVG: the five characters XML reserves, escaped. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&${{ '&': 'amp', '<': 'lt', '>': 'gt', '"': 'quot', "'": 'apos' }[c]};`);
}

/**
 * Horizontal bar charts stacked vertically, one panel per measure, the same labels in each (so that a
 * case keeps its colour from panel to panel). A standalone SVG document.
 */
export function barChartSvg(title: string, panels: readonly BarPanel[], subtitle?: string): string {
  const width = MARGIN * 2 + LABEL_WIDTH + BAR_AREA + VALUE_WIDTH;
  const parts: string[] = [];
  let y = MARGIN + 18;
  parts.push(`<text x="${MARGIN}" y="${y}" ${FONT} font-size="15" font-weight="bold">${escapeXml(title)}</text>`);
  if (subtitle !== undefined) {
    y += 18;
    parts.push(`<text x="${MARGIN}" y="${y}" ${FONT} font-size="12">${escapeXml(subtitle)}</text>`);
  }
  y += PANEL_GAP;
  for (const panel of panels) {
    y += TITLE_HEIGHT - 10;
    parts.push(`<text x="${MARGIN}" y="${y}" ${FONT} font-size="12" font-weight="bold">${escapeXml(panel.title)}</text>`);
    y += 10;
    const max = panel.max ?? Math.max(0, ...panel.bars.map((b) => b.value));
    const x0 = MARGIN + LABEL_WIDTH;
    const top = y;
    panel.bars.forEach((bar, i) => {
      const length = max > 0 && Number.isFinite(bar.value) ? Math.max(0, Math.min(1, bar.value / max)) * BAR_AREA : 0;
      const text = bar.text ?? (Number.isFinite(bar.value) ? bar.value.toFixed(panel.digits ?? 2) : 'n/a');
      parts.push(`<text x="${x0 - 8}" y="${y + BAR_HEIGHT - 6}" ${FONT} font-size="12" text-anchor="end">${escapeXml(bar.label)}</text>`);
      parts.push(`<rect x="${x0}" y="${y}" width="${length.toFixed(1)}" height="${BAR_HEIGHT}" fill="${COLORS[i % COLORS.length]}"/>`);
      parts.push(`<text x="${(x0 + length + 6).toFixed(1)}" y="${y + BAR_HEIGHT - 6}" ${FONT} font-size="12">${escapeXml(text)}</text>`);
      y += BAR_HEIGHT + BAR_GAP;
    });
    parts.push(`<line x1="${x0}" y1="${top - 3}" x2="${x0}" y2="${y - BAR_GAP + 3}" stroke="#333"/>`);
    y += PANEL_GAP - BAR_GAP;
  }
  const height = y + MARGIN;
  return `<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">\n` +
    `<rect width="100%" height="100%" fill="white"/>\n${parts.join('\n')}\n</svg>\n`;
}

export interface StackedBar {
  label: string;
  /** One value per segment name, drawn left to right. */
  segments: readonly number[];
}

/**
 * Horizontal stacked bars (Disco's figure 5 shape): each bar split into named segments with a legend, a
 * vertical reference line (at 1.0 for times normalized to a baseline) and each bar's total at its end. The
 * width grows with the title, so nothing is clipped. A standalone SVG document.
 */
export function stackedBarsSvg(title: string, names: readonly string[], bars: readonly StackedBar[], options: { reference?: number; subtitle?: string; digits?: number } = {}): string {
  const textWidth = (text: string, size: number): number => text.length * size * 0.6;
  const width = Math.ceil(Math.max(MARGIN * 2 + LABEL_WIDTH + BAR_AREA + VALUE_WIDTH, MARGIN * 2 + textWidth(title, 15), MARGIN * 2 + textWidth(options.subtitle ?? '', 12)));
  const totals = bars.map((b) => b.segments.reduce((a, v) => a + Math.max(0, v), 0));
  const max = Math.max(options.reference ?? 0, ...totals) * 1.05;
  const parts: string[] = [];
  let y = MARGIN + 18;
  parts.push(`<text x="${MARGIN}" y="${y}" ${FONT} font-size="15" font-weight="bold">${escapeXml(title)}</text>`);
  if (options.subtitle !== undefined) {
    y += 18;
    parts.push(`<text x="${MARGIN}" y="${y}" ${FONT} font-size="12">${escapeXml(options.subtitle)}</text>`);
  }
  // The legend, wrapped to the width.
  y += 14;
  let x = MARGIN;
  names.forEach((name, i) => {
    const w = 18 + textWidth(name, 12) + 14;
    if (x + w > width - MARGIN) {
      x = MARGIN;
      y += 18;
    }
    parts.push(`<rect x="${x}" y="${y}" width="12" height="12" fill="${COLORS_STACKED[i % COLORS_STACKED.length]}"/>`);
    parts.push(`<text x="${x + 16}" y="${y + 10}" ${FONT} font-size="12">${escapeXml(name)}</text>`);
    x += w;
  });
  y += 12 + PANEL_GAP;
  const x0 = MARGIN + LABEL_WIDTH;
  const top = y;
  const scale = (v: number): number => (max > 0 ? (v / max) * BAR_AREA : 0);
  bars.forEach((bar, k) => {
    parts.push(`<text x="${x0 - 8}" y="${y + BAR_HEIGHT - 6}" ${FONT} font-size="12" text-anchor="end">${escapeXml(bar.label)}</text>`);
    let at = x0;
    bar.segments.forEach((v, i) => {
      const length = scale(Math.max(0, v));
      if (length > 0) parts.push(`<rect x="${at.toFixed(1)}" y="${y}" width="${length.toFixed(1)}" height="${BAR_HEIGHT}" fill="${COLORS_STACKED[i % COLORS_STACKED.length]}"/>`);
      at += length;
    });
    parts.push(`<text x="${(at + 6).toFixed(1)}" y="${y + BAR_HEIGHT - 6}" ${FONT} font-size="12">${totals[k]!.toFixed(options.digits ?? 3)}</text>`);
    y += BAR_HEIGHT + BAR_GAP;
  });
  parts.push(`<line x1="${x0}" y1="${top - 3}" x2="${x0}" y2="${y - BAR_GAP + 3}" stroke="#333"/>`);
  if (options.reference !== undefined) {
    const rx = (x0 + scale(options.reference)).toFixed(1);
    parts.push(`<line x1="${rx}" y1="${top - 6}" x2="${rx}" y2="${y - BAR_GAP + 6}" stroke="#000" stroke-dasharray="4 3"/>`);
    parts.push(`<text x="${rx}" y="${y + 10}" ${FONT} font-size="11" text-anchor="middle">${options.reference.toFixed(1)}</text>`);
    y += 14;
  }
  const height = y + MARGIN;
  return `<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">\n` +
    `<rect width="100%" height="100%" fill="white"/>\n${parts.join('\n')}\n</svg>\n`;
}

/** User and kernel first (greys and blues), then the monitor's parts in warm colours. */
const COLORS_STACKED = ['#9aa5b1', '#3b6ea8', '#c8553d', '#e08e45', '#b8860b', '#7d5ba6', '#4a9c8c', '#8a9a3b', '#d35d9b', '#555555'];
