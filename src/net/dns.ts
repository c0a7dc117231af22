// The user network's DNS server (RFC 1035): it knows only a few names (the host's own) and says so for the rest.

/** Header (RFC 1035 §4.1.1): id, flags, four counts; then the question. */
const HEADER = 12;
const FLAG_RESPONSE = 0x8000;
const OPCODE_MASK = 0x7800;
const FLAG_AUTHORITATIVE = 0x0400;
const FLAG_RECURSION_DESIRED = 0x0100;
const FLAG_RECURSION_AVAILABLE = 0x0080;
const RCODE_FORMERR = 1;
const RCODE_NXDOMAIN = 3;
const RCODE_NOTIMP = 4;
const TYPE_A = 1;
const CLASS_IN = 1;
/** A pointer to the question's name, which starts right after the header (§4.1.4). */
const NAME_POINTER = 0xc000 | HEADER;
const TTL_SECONDS = 60;
const MAX_NAME = 255;

/**
 * The answer to one query, or undefined for bytes that are no query at all (too short, or a response).
 * `names` maps lower-case names without the final dot to an IPv4 address. A known name gets its A record
 * (and an empty answer for other types); an unknown one NXDOMAIN; a query this server cannot read FORMERR;
 * an opcode other than QUERY NOTIMP. Nothing is forwarded.
 */
export function answerDns(query: Uint8Array, names: ReadonlyMap<string, number>): Uint8Array | undefined {
  if (query.length < HEADER) return undefined;
  const view = new DataView(query.buffer, query.byteOffset, query.length);
  const flags = view.getUint16(2);
  if ((flags & FLAG_RESPONSE) !== 0) return undefined;
  const reply = (rcode: number, question: Uint8Array, answer?: number): Uint8Array => {
    const bytes = new Uint8Array(HEADER + question.length + (answer === undefined ? 0 : 16));
    const out = new DataView(bytes.buffer);
    out.setUint16(0, view.getUint16(0));
    out.setUint16(2, FLAG_RESPONSE | (flags & OPCODE_MASK) | FLAG_AUTHORITATIVE | (flags & FLAG_RECURSION_DESIRED) | FLAG_RECURSION_AVAILABLE | rcode);
    out.setUint16(4, question.length === 0 ? 0 : 1);
    out.setUint16(6, answer === undefined ? 0 : 1);
    bytes.set(question, HEADER);
    if (answer !== undefined) {
      let at = HEADER + question.length;
      out.setUint16(at, NAME_POINTER);
      out.setUint16(at + 2, TYPE_A);
      out.setUint16(at + 4, CLASS_IN);
      out.setUint32(at + 6, TTL_SECONDS);
      out.setUint16(at + 10, 4);
      at += 12;
      out.setUint32(at, answer);
    }
    return bytes;
  };
  if ((flags & OPCODE_MASK) !== 0) return reply(RCODE_NOTIMP, new Uint8Array(0));
  if (view.getUint16(4) !== 1) return reply(RCODE_FORMERR, new Uint8Array(0));
  // The question: labels up to a zero length, no compression (a question's name comes first), then type and class.
  const labels: string[] = [];
  let at = HEADER;
  for (;;) {
    if (at >= query.length) return reply(RCODE_FORMERR, new Uint8Array(0));
    const length = query[at];
    if (length === 0) break;
    if (length > 63 || at + 1 + length > query.length || at - HEADER + length > MAX_NAME) return reply(RCODE_FORMERR, new Uint8Array(0));
    labels.push(String.fromCharCode(...query.subarray(at + 1, at + 1 + length)));
    at += 1 + length;
  }
  if (at + 5 > query.length) return reply(RCODE_FORMERR, new Uint8Array(0));
  const question = query.subarray(HEADER, at + 5);
  const type = view.getUint16(at + 1);
  const klass = view.getUint16(at + 3);
  const address = names.get(labels.join('.').toLowerCase());
  if (address === undefined) return reply(RCODE_NXDOMAIN, question);
  return reply(0, question, type === TYPE_A && klass === CLASS_IN ? address : undefined);
}
