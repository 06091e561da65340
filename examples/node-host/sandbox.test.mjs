// Unit tests of the Node host's sandbox rules (node --test); run by
// tests/it/node_host.rs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Blanker, allowedOrigins, followRedirect, isNonPublic, permits, printable } from './sandbox.mjs';

test('addresses outside the public internet, as the Rust host judges them', () => {
  for (const ip of ['127.0.0.1', '10.1.2.3', '172.16.0.1', '192.168.1.1', '169.254.169.254', '100.64.0.1',
    '0.0.0.0', '192.0.0.192', '198.18.0.1', '224.0.0.1', '255.255.255.255', '::1', '::', 'fc00::1',
    'fe80::1', '::ffff:127.0.0.1', '::ffff:7f00:1', '64:ff9b::a9fe:a9fe', '2002:a00:1::', 'ff02::1']) {
    assert.ok(isNonPublic(ip), ip);
  }
  for (const ip of ['8.8.8.8', '1.1.1.1', '2606:4700::1111', '::ffff:8.8.8.8', '172.32.0.1']) {
    assert.ok(!isNonPublic(ip), ip);
  }
  const policy = { named: ['127.0.0.1'], allowPrivateNetworks: false };
  assert.ok(permits(policy, '127.0.0.1', true), 'named literally');
  assert.ok(!permits(policy, '127.0.0.1', false), 'a name that resolves to it');
});

test('redirects never go from https down to http, and turn into GETs as the rules say', () => {
  const from = new URL('https://api.example.com/a');
  const hop = () => ({ method: 'POST', body: 'x', headers: { 'content-type': 'a/b', 'x-key': 'k', accept: '*/*' } });
  assert.throws(() => followRedirect(from, 302, 'http://api.example.com/b', hop()), (e) => e.tag === 'denied');
  for (const status of [301, 302, 307, 308]) {
    const h = hop();
    assert.equal(followRedirect(from, status, '/b', h).href, 'https://api.example.com/b');
    assert.equal(h.method, 'POST', `${status} keeps the method on one origin`);
    assert.equal(h.headers['x-key'], 'k');
  }
  const h303 = hop();
  followRedirect(from, 303, '/b', h303);
  assert.equal(h303.method, 'GET');
  assert.equal(h303.body, undefined);
  const cross = hop();
  followRedirect(from, 302, 'https://other.example.com/b', cross);
  assert.equal(cross.method, 'GET');
  assert.deepEqual(cross.headers, { accept: '*/*' });
  const kept = hop();
  followRedirect(from, 307, 'https://other.example.com/b', kept);
  assert.equal(kept.method, 'POST', 'a 307 keeps the method');
  assert.deepEqual(kept.headers, { 'content-type': 'a/b', accept: '*/*' });
});

test('the allow list holds the base origin and the extras', () => {
  const origins = allowedOrigins('http://127.0.0.1:5000/api', ['api.example.com', 'https://x.example:8443']);
  assert.deepEqual(origins, ['http://127.0.0.1:5000', 'http://api.example.com:80', 'https://api.example.com:443', 'https://x.example:8443']);
  assert.throws(() => allowedOrigins('ftp://x'), /must be http or https/);
});

test('every spelling of a secret is blanked', () => {
  const b = new Blanker(['s3/cr et+x', 'abc']);
  const bytes = (s) => Buffer.from(b.bytes(new TextEncoder().encode(s))).toString('utf8');
  for (const spelled of ['s3/cr et+x', 's3%2Fcr+et%2Bx', 's3%2fcr%20et%2bx', 's3%2Fcr%20et%2Bx', 's3\\/cr et+x']) {
    assert.equal(bytes(`<${spelled}>`), '<REDACTED>', spelled);
  }
  assert.equal(bytes('{"a":"\\u0073\\u0033/cr et+x"}'), '{"a":"REDACTED"}');
  assert.equal(bytes('abc'), 'abc', 'too short to blank');
  assert.equal(b.text('x s3/cr et+x y'), 'x REDACTED y');
});

test('text for a terminal has its control characters escaped and is cut', () => {
  assert.equal(printable('\x1b[31mred\x07\r\n\u202ex\u009b', 100), '\\u{1b}[31mred\\u{7}\\u{d}\\u{a}\\u{202e}x\\u{9b}');
  assert.equal(printable('abcdef', 3), 'abc… (3 more bytes)');
});
