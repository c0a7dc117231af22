import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { barChartSvg, escapeXml, markdownTable } from './report.js';

describe('markdownTable', () => {
  it('aligns text left and numbers right, with a rule that says so', () => {
    const table = markdownTable(['case', 'time'], [['first-touch', 12.5], ['one-node', '7.25']]);
    assert.equal(table, [
      '| case        | time |',
      '| ----------- | ---: |',
      '| first-touch | 12.5 |',
      '| one-node    | 7.25 |',
      '',
    ].join('\n'));
  });

  it('treats percentages as numbers and a column with any word as text', () => {
    const table = markdownTable(['a', 'b'], [['87.5 %', 'x'], ['3 %', '1']]);
    assert.match(table, /\| -----: \| --- \|/);
    assert.match(table, /\| 87\.5 % \| x   \|\n\|    3 % \| 1   \|/);
  });
});

describe('barChartSvg', () => {
  const svg = barChartSvg('a <title> & more', [
    { title: 'time', bars: [{ label: 'one', value: 10 }, { label: 'two', value: 5 }, { label: 'three', value: 0 }] },
    { title: 'share', bars: [{ label: 'one', value: 50, text: '50 %' }], max: 100 },
  ]);

  it('is a standalone SVG document whose text is escaped', () => {
    assert.match(svg, /^<\?xml version="1.0" encoding="UTF-8"\?>\n<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.ok(svg.includes('a &lt;title&gt; &amp; more'));
    assert.ok(!svg.includes('<title>'));
    assert.ok(svg.trimEnd().endsWith('</svg>'));
  });

  it('gives no element an attribute twice (XML forbids it)', () => {
    for (const tag of svg.matchAll(/<([a-z]+)((?:\s+[a-z-]+="[^"]*")*)\s*\/?>/g)) {
      const names = [...tag[2]!.matchAll(/([a-z-]+)=/g)].map((m) => m[1]);
      assert.equal(new Set(names).size, names.length, `<${tag[1]}${tag[2]}>`);
    }
    assert.ok([...svg.matchAll(/<text /g)].length >= 9, 'the scan saw the text elements');
  });

  it('draws bars in proportion to the largest, or to the given maximum', () => {
    const widths = [...svg.matchAll(/<rect x="[\d.]+" y="[\d.]+" width="([\d.]+)"/g)].map((m) => Number(m[1]));
    assert.equal(widths.length, 4);
    assert.ok(widths[0]! > 0);
    assert.equal(widths[1], widths[0]! / 2);
    assert.equal(widths[2], 0);
    assert.equal(widths[3], widths[0]! / 2, 'half of the axis maximum 100 is half of a full bar');
    assert.ok(svg.includes('>50 %<'));
    assert.ok(svg.includes('>10.00<'));
  });
});

it('escapeXml escapes the five reserved characters', () => {
  assert.equal(escapeXml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;');
});
