// The sandbox's rules, as the Rust host keeps them (host/src/http/*.rs,
// host/src/printable.rs), for the Node host's threads: which origins and
// addresses a request may reach, what a redirect carries, which headers are
// the host's, every spelling of a secret blanked in an answer, and text made
// safe for a terminal. Pure functions and plain data only: host.mjs, the
// sync worker and the fetch worker each import what they need.
import { isIP } from 'node:net';

/// What blanking leaves where a secret was (the Rust host's `BLANK`).
export const BLANK = 'REDACTED';

/// Headers the guest may not set (the Rust host's `HOST_ONLY_HEADERS`): they
/// pick the virtual host, frame the body, choose the answer's compression
/// (the host asks for gzip alone, the one encoding it decodes before it
/// blanks), or govern the connection and proxies.
const HOST_ONLY_HEADERS = new Set([
  'host', 'accept-encoding', 'content-length', 'transfer-encoding', 'connection',
  'te', 'upgrade', 'keep-alive', 'trailer', 'expect',
]);

export function isHostOnlyHeader(name) {
  const n = name.toLowerCase();
  return HOST_ONLY_HEADERS.has(n) || n.startsWith('proxy-');
}

/// The guest's headers that a redirect carries to another origin.
const SAFE_ACROSS_ORIGINS = new Set(['accept', 'accept-language', 'content-type']);

/// Whether a header named `name` carries a credential (the connector's
/// `is_credential_header`): such a literal header value is a secret.
export function isCredentialHeader(name) {
  const n = name.toLowerCase();
  return n === 'cookie'
    || ['auth', 'token', 'secret', 'password', 'session', 'api-key', 'apikey', 'api_key'].some((p) => n.includes(p));
}

/// The config keys that are the host's, never handed to the component.
export const HOST_KEYS = ['auth', 'headers', 'http', 'sandbox', 'allowed_hosts'];

/// The origin of a URL object as `scheme://host:port` with the port always
/// written, so `http://a` and `http://a:80` are one origin.
export function originOf(url) {
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  return `${url.protocol}//${url.hostname}:${port}`;
}

/// The origins a config allows: the `base_url`'s, and each `allowed_hosts`
/// entry (a URL's origin, or `host` / `host:port` for http and https).
export function allowedOrigins(baseUrl, extra = []) {
  const parse = (text, what) => {
    let url;
    try { url = new URL(text); } catch { throw new Error(`${what}: \`${text}\` must be http or https with a host`); }
    if (!['http:', 'https:'].includes(url.protocol) || !url.hostname) {
      throw new Error(`${what}: \`${text}\` must be http or https with a host`);
    }
    return url;
  };
  const origins = [originOf(parse(baseUrl, 'base_url'))];
  for (const entry of extra) {
    if (entry.includes('://')) origins.push(originOf(parse(entry, 'allowed_hosts')));
    else {
      for (const scheme of ['http', 'https']) origins.push(originOf(parse(`${scheme}://${entry}`, 'allowed_hosts')));
    }
  }
  return origins;
}

/// Addresses the config names literally (a `base_url` of `127.0.0.1`): a
/// URL naming one of them may reach it even if it is private.
export function literalAddresses(origins) {
  return origins.map((o) => bare(new URL(o).hostname)).filter((h) => isIP(h));
}

/// A host without the brackets of an IPv6 literal.
export const bare = (host) => host.replace(/^\[(.*)\]$/, '$1');

const v4 = (text) => text.split('.').map(Number);

/// Whether `ip` is outside the public internet (the Rust host's
/// `is_non_public`): loopback, private, shared, link-local (the cloud
/// metadata service), unique-local, unspecified, broadcast, multicast,
/// reserved, also inside IPv6 (mapped, compatible, NAT64, 6to4).
export function isNonPublic(ip) {
  if (isIP(ip) === 4) {
    const [a, b, c] = v4(ip);
    return a === 127 || a === 10 || (a === 172 && b >= 16 && b < 32) || (a === 192 && b === 168)
      || (a === 169 && b === 254) || a === 0 || (a === 100 && b >= 64 && b < 128)
      || (a === 192 && b === 0 && c === 0) || (a === 198 && (b & 0xfe) === 18)
      || a >= 224; // multicast 224/4, reserved 240/4, broadcast
  }
  const s = ipv6Segments(ip);
  if (!s) return true;
  const embedded = (hi, lo) => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  if (s.slice(0, 5).every((x) => x === 0) && s[5] === 0xffff) return isNonPublic(embedded(s[6], s[7]));
  let carried = null;
  if (s.slice(0, 6).every((x) => x === 0) && !(s[6] === 0 && s[7] <= 1)) carried = embedded(s[6], s[7]);
  else if (s[0] === 0x64 && s[1] === 0xff9b && s.slice(2, 6).every((x) => x === 0)) carried = embedded(s[6], s[7]);
  else if (s[0] === 0x2002) carried = embedded(s[1], s[2]);
  if (carried && isNonPublic(carried)) return true;
  const all0 = s.every((x) => x === 0);
  const loopback = s.slice(0, 7).every((x) => x === 0) && s[7] === 1;
  return all0 || loopback || (s[0] & 0xff00) === 0xff00 || (s[0] & 0xfe00) === 0xfc00
    || (s[0] & 0xffc0) === 0xfe80 || (s[0] & 0xffc0) === 0xfec0
    || (s[0] === 0x64 && s[1] === 0xff9b && s[2] === 1);
}

/// The eight 16-bit groups of an IPv6 address, or null.
function ipv6Segments(ip) {
  let text = ip.split('%')[0];
  const dotted = text.match(/(\d+\.\d+\.\d+\.\d+)$/);
  if (dotted) {
    const [a, b, c, d] = v4(dotted[1]);
    text = `${text.slice(0, -dotted[1].length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, null];
  const part = (t) => (t ? t.split(':').map((x) => parseInt(x, 16)) : []);
  const h = part(head);
  const t = part(tail);
  const fill = tail === null ? [] : new Array(8 - h.length - t.length).fill(0);
  const s = [...h, ...fill, ...t];
  return s.length === 8 && s.every((x) => Number.isInteger(x) && x >= 0 && x <= 0xffff) ? s : null;
}

/// Whether a connection to `ip` is allowed; `literal` when the URL named
/// the address itself.
export function permits(policy, ip, literal) {
  return policy.allowPrivateNetworks || !isNonPublic(ip) || (literal && policy.named.includes(ip));
}

/// Where a redirect leads and what the next hop sends (the Rust host's
/// `follow_redirect`): never from https down to http; a 303, or a 301 or
/// 302 to another origin, becomes a GET without a body; a hop to another
/// origin keeps only the guest's accept, accept-language and content-type.
/// Returns the next URL, or throws a `{tag, val}` http-error.
export function followRedirect(from, status, location, hop) {
  let next;
  try { next = new URL(location, from); } catch (e) {
    throw { tag: 'other', val: `redirect to a bad location \`${printable(location, 1024)}\`: ${e.message}` };
  }
  if (from.protocol === 'https:' && next.protocol === 'http:') {
    throw { tag: 'denied', val: `redirect from https down to http (${printable(next.href, 1024)})` };
  }
  const crossOrigin = originOf(next) !== originOf(from);
  const toGet = status === 303 || (crossOrigin && (status === 301 || status === 302));
  if (toGet && hop.method !== 'HEAD') {
    hop.method = 'GET';
    hop.body = undefined;
    delete hop.headers['content-type'];
  }
  if (crossOrigin) {
    for (const name of Object.keys(hop.headers)) {
      if (!SAFE_ACROSS_ORIGINS.has(name)) delete hop.headers[name];
    }
  }
  return next;
}

// --- Blanking: each secret in every spelling an API may echo it in.

/// `s` percent-encoded: unreserved kept, a space as `space`, other bytes
/// `%XX` in upper or lower hex.
function percent(s, space, upper) {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-._~]/.test(c)) out += c;
    else if (b === 0x20) out += space;
    else {
      const hex = b.toString(16).padStart(2, '0');
      out += `%${upper ? hex.toUpperCase() : hex}`;
    }
  }
  return out;
}

/// `s` as application/x-www-form-urlencoded writes it (`*` kept, `~` not).
function formEncoded(s) {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9*\-._]/.test(c)) out += c;
    else if (b === 0x20) out += '+';
    else out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

const escapeRegex = (s) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/// Blanks secret values (shorter than 4 bytes are skipped: they would blank
/// innocent text) as sent, percent-encoded (`+` or `%20`, upper or lower
/// hex), form-encoded, and escaped in a JSON string (`\/`, and `\uXXXX` in
/// any mix, found by decoding the JSON), as the Rust host's `Blanker`.
export class Blanker {
  constructor(secrets = []) {
    const raw = [...new Set(secrets.map(String).filter((s) => Buffer.byteLength(s) >= 4))];
    const forms = new Set();
    for (const v of raw) {
      forms.add(v);
      for (const space of ['+', '%20']) for (const upper of [true, false]) forms.add(percent(v, space, upper));
      forms.add(formEncoded(v));
      const json = JSON.stringify(v).slice(1, -1);
      forms.add(json);
      forms.add(json.replaceAll('/', '\\/'));
    }
    // Longest first: an alternation takes the first that matches at a place.
    const sorted = [...forms].sort((a, b) => Buffer.byteLength(b) - Buffer.byteLength(a));
    this.empty = sorted.length === 0;
    if (this.empty) return;
    // One pattern over text, one over bytes (as latin1: a byte a char).
    this.textPattern = new RegExp(sorted.map(escapeRegex).join('|'), 'g');
    this.bytePattern = new RegExp(
      sorted.map((f) => escapeRegex(Buffer.from(f, 'utf8').toString('latin1'))).join('|'), 'g',
    );
  }

  /// `text` with every spelling of every secret blanked.
  text(text) {
    if (this.empty) return text;
    return text.replace(this.textPattern, BLANK);
  }

  /// A body (Uint8Array) with every spelling blanked; a JSON body that
  /// still holds one once decoded is written again with its strings blanked.
  bytes(body) {
    if (this.empty) return body;
    let latin = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('latin1');
    let changed = false;
    if (this.bytePattern.test(latin)) {
      this.bytePattern.lastIndex = 0;
      latin = latin.replace(this.bytePattern, BLANK);
      changed = true;
    }
    let out = changed ? Buffer.from(latin, 'latin1') : Buffer.from(body);
    if (latin.includes('\\u')) {
      let value;
      try { value = JSON.parse(out.toString('utf8')); } catch { value = undefined; }
      if (value !== undefined) {
        const hit = { found: false };
        const blanked = this.#value(value, hit);
        if (hit.found) out = Buffer.from(JSON.stringify(blanked), 'utf8');
      }
    }
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  }

  #value(v, hit) {
    if (typeof v === 'string') {
      const b = this.text(v);
      if (b !== v) hit.found = true;
      return b;
    }
    if (Array.isArray(v)) return v.map((x) => this.#value(x, hit));
    if (v && typeof v === 'object') {
      const out = {};
      for (const [k, x] of Object.entries(v)) out[this.#value(k, hit)] = this.#value(x, hit);
      return out;
    }
    return v;
  }
}

// --- Text for a terminal (the Rust host's `printable`).

/// Whether `c` (a code point) can change what a terminal shows beyond
/// printing itself: a control character, or a bidirectional override.
const unsafe = (c) => c < 0x20 || (c >= 0x7f && c <= 0x9f) || c === 0x200e || c === 0x200f
  || (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069);

/// `text` with every control character escaped as `\u{..}`, cut to about
/// `maxBytes` (the cut says how much was left out), secrets blanked by
/// `blanker` if given.
export function printable(text, maxBytes, blanker) {
  const s = blanker ? blanker.text(String(text)) : String(text);
  let out = '';
  let bytes = 0;
  let at = 0;
  for (const ch of s) {
    if (bytes >= maxBytes) {
      out += `… (${Buffer.byteLength(s) - at} more bytes)`;
      break;
    }
    const c = ch.codePointAt(0);
    const piece = unsafe(c) ? `\\u{${c.toString(16)}}` : ch;
    out += piece;
    bytes += Buffer.byteLength(piece);
    at += Buffer.byteLength(ch);
  }
  return out;
}
