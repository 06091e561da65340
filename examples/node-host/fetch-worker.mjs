// The network side of the synchronous `http-fetch`: a worker thread sends
// one request with node:http(s) and hands the answer back through a
// MessagePort, then wakes the sync thread, which sleeps in Atomics.wait
// meanwhile (see host-imports.js).
//
// What it keeps, as the Rust host does:
// - every address a host name resolves to is checked before the connection
//   (`lookup` below), and the socket connects to exactly the checked
//   addresses, so a name that resolves or rebinds to a private address
//   (169.254.169.254, 10/8, loopback) is refused; an address the config
//   names literally may be reached;
// - the body is counted as it arrives, and decoded from gzip (the only
//   encoding the host asks for) as it arrives, so an answer past
//   `max_response_bytes` is stopped there, compressed or not; an answer in
//   another encoding is refused (it could not be checked for secrets);
// - the whole request, connection to last byte, is bounded by the timeout.
import { workerData } from 'node:worker_threads';
import { lookup as dnsLookup } from 'node:dns';
import { isIP } from 'node:net';
import http from 'node:http';
import https from 'node:https';
import { createGunzip } from 'node:zlib';
import { bare, permits, printable } from './sandbox.mjs';

const { port, signal } = workerData;
const agents = {
  'http:': new http.Agent({ keepAlive: true }),
  'https:': new https.Agent({ keepAlive: true }),
};

class Refused extends Error {}

/// A `lookup` for node:net that hands over only the addresses `policy`
/// permits, so the socket connects to what was checked.
function checkedLookup(policy) {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, found) => {
      if (err) return callback(err);
      const allowed = found.filter((a) => permits(policy, a.address, false));
      if (allowed.length === 0) {
        const list = found.map((a) => a.address).join(', ');
        return callback(new Refused(
          `${hostname} resolves to ${list}, outside the public internet; set http.allow_private_networks to reach it`,
        ));
      }
      if (options.all) return callback(null, allowed);
      return callback(null, allowed[0].address, allowed[0].family);
    });
  };
}

function send(req) {
  return new Promise((resolve) => {
    let settled = false;
    const done = (answer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(answer);
    };
    const url = new URL(req.url);
    const host = bare(url.hostname);
    if (isIP(host) && !permits(req.policy, host, true)) {
      return done({
        tag: 'err',
        val: { tag: 'denied', val: `${host} is outside the public internet; set http.allow_private_networks to reach it` },
      });
    }
    const body = req.body === undefined ? undefined : Buffer.from(req.body);
    const headers = { ...req.headers, 'accept-encoding': 'gzip' };
    if (body !== undefined) headers['content-length'] = String(body.byteLength);
    const lib = url.protocol === 'https:' ? https : http;
    let request;
    const timer = setTimeout(() => {
      done({ tag: 'err', val: { tag: 'timeout' } });
      request?.destroy();
    }, req.timeoutMs);
    request = lib.request(url, {
      method: req.method,
      headers,
      agent: agents[url.protocol],
      lookup: checkedLookup(req.policy),
    }, (res) => {
      const encoding = String(res.headers['content-encoding'] ?? '').trim().toLowerCase();
      if (encoding && encoding !== 'identity' && encoding !== 'gzip') {
        setImmediate(() => res.destroy());
        return done({
          tag: 'err',
          val: {
            tag: 'other',
            val: `the answer is \`${printable(encoding, 100)}\`-encoded, which incsync did not ask for (it accepts gzip only) and cannot check for secrets`,
          },
        });
      }
      const stream = encoding === 'gzip' ? res.pipe(createGunzip()) : res;
      const chunks = [];
      let size = 0;
      stream.on('data', (chunk) => {
        size += chunk.byteLength;
        if (size > req.maxBytes) {
          done({ tag: 'err', val: { tag: 'too-large', val: BigInt(req.maxBytes) } });
          res.destroy();
          stream.destroy();
          return;
        }
        chunks.push(chunk);
      });
      stream.on('error', (e) => done({ tag: 'err', val: { tag: 'connection', val: `reading the answer: ${e.message}` } }));
      res.on('aborted', () => done({ tag: 'err', val: { tag: 'connection', val: 'the answer was cut short' } }));
      stream.on('end', () => {
        const out = [];
        for (let i = 0; i < res.rawHeaders.length; i += 2) {
          const name = res.rawHeaders[i].toLowerCase();
          // Decoded here: the header no longer describes the body.
          if (encoding === 'gzip' && (name === 'content-encoding' || name === 'content-length')) continue;
          out.push([name, res.rawHeaders[i + 1]]);
        }
        const all = Buffer.concat(chunks);
        done({
          tag: 'ok',
          val: { status: res.statusCode, headers: out, body: new Uint8Array(all.buffer, all.byteOffset, all.byteLength) },
        });
      });
    });
    request.on('error', (e) => {
      if (e instanceof Refused) return done({ tag: 'err', val: { tag: 'denied', val: e.message } });
      const cause = `${e.code ?? ''} ${e.message ?? e}`.trim();
      return done({ tag: 'err', val: { tag: 'connection', val: cause } });
    });
    request.end(body);
  });
}

port.on('message', async (req) => {
  let answer;
  try {
    answer = await send(req);
  } catch (e) {
    answer = { tag: 'err', val: { tag: 'other', val: String(e?.message ?? e) } };
  }
  port.postMessage(answer);
  Atomics.store(signal, 0, 1);
  Atomics.notify(signal, 0);
});
