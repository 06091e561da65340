// The network side of the synchronous `http-fetch`: a worker thread runs
// Node's asynchronous fetch() and hands each answer back through a
// MessagePort, then wakes the main thread, which sleeps in Atomics.wait
// meanwhile (see host-imports.js).
import { workerData } from 'node:worker_threads';

const { port, signal } = workerData;

function httpError(e) {
  if (e?.name === 'TimeoutError') return { tag: 'timeout' };
  const cause = e?.cause ? `${e.cause.code ?? ''} ${e.cause.message ?? e.cause}`.trim() : '';
  return { tag: 'connection', val: cause || String(e?.message ?? e) };
}

port.on('message', async (req) => {
  let answer;
  try {
    const res = await fetch(req.url, {
      method: req.method,
      headers: req.headers,
      body: req.body,
      redirect: 'manual',
      signal: AbortSignal.timeout(req.timeoutMs),
    });
    const body = new Uint8Array(await res.arrayBuffer());
    if (body.byteLength > req.maxBytes) {
      answer = { tag: 'err', val: { tag: 'too-large', val: BigInt(req.maxBytes) } };
    } else {
      const headers = [];
      res.headers.forEach((value, name) => headers.push([name, value]));
      answer = { tag: 'ok', val: { status: res.status, headers, body } };
    }
  } catch (e) {
    answer = { tag: 'err', val: httpError(e) };
  }
  port.postMessage(answer);
  Atomics.store(signal, 0, 1);
  Atomics.notify(signal, 0);
});
