// The `incsync:connector/host` imports for the jco-transpiled connector:
// http-fetch (synchronous, as the WIT declares it), upsert, delete, truncate
// (a full_refresh stream empties its table), checkpoint, log.
// jco maps the interface onto this module (`--map incsync:connector/host=…`);
// it runs in the sync worker (sync-worker.mjs), which calls configure()
// before the connector's first call. Every call marks progress in a shared
// counter the supervisor (host.mjs) watches for its deadline.
import { MessageChannel, Worker, parentPort, receiveMessageOnPort } from 'node:worker_threads';
import { Blanker, followRedirect, isHostOnlyHeader, originOf, printable } from './sandbox.mjs';
import { writePrivate } from './warehouse-file.mjs';

let settings = null;
let blanker = new Blanker();
let progress = null;
const stats = { requests: 0, bytes: 0, rows_upserted: {}, checkpoints: 0 };

// The warehouse: tables of rows keyed by primary key, and the saved state.
// Upserts wait in `pending` until a checkpoint commits them with the state.
let warehouse = { tables: {}, state: null };
let pending = [];

/// Sets the sandbox, the credentials, the warehouse file and its contents,
/// and the shared progress counter ([0] counts calls in and out, [1] is 1
/// while a call is in the host: waiting on the network is no computing).
export function configure(s, shared) {
  settings = s;
  warehouse = s.warehouse;
  blanker = new Blanker(s.secrets);
  progress = shared;
}

/// The tables the connector declared: their primary keys.
export function declare(tables) {
  settings.primaryKeys = Object.fromEntries(tables.map((t) => [t.name, t.primaryKey]));
}

export function report() {
  return stats;
}

export function blank(text) {
  return blanker.text(text);
}

/// Runs `f` as a host call: progress for the supervisor's deadline.
function hostCall(f) {
  if (progress) {
    Atomics.add(progress, 0, 1);
    Atomics.store(progress, 1, 1);
  }
  try {
    return f();
  } finally {
    if (progress) {
      Atomics.store(progress, 1, 0);
      Atomics.add(progress, 0, 1);
    }
  }
}

// --- http-fetch: a worker does the asynchronous fetch; this thread waits.
const signal = new Int32Array(new SharedArrayBuffer(4));
const channel = new MessageChannel();
const worker = new Worker(new URL('./fetch-worker.mjs', import.meta.url), {
  workerData: { port: channel.port2, signal },
  transferList: [channel.port2],
});
worker.unref();
channel.port1.unref();

export function shutdown() {
  return worker.terminate();
}

function fetchOnce(req) {
  Atomics.store(signal, 0, 0);
  channel.port1.postMessage(req);
  Atomics.wait(signal, 0, 0);
  return receiveMessageOnPort(channel.port1).message;
}

const denied = (why) => {
  log('warn', `sandbox: refused ${why}`, 'host');
  return { tag: 'err', val: { tag: 'denied', val: why } };
};

/// Attaches the config's credentials to a request for the `base_url`'s
/// origin (the guest's header of the same name is replaced; a query key the
/// URL carries over gets the host's value).
function withCredentials(url, headers) {
  if (originOf(url) !== settings.baseOrigin) return;
  Object.assign(headers, settings.credentialHeaders);
  for (const [k] of settings.credentialQuery) url.searchParams.delete(k);
  for (const [k, v] of settings.credentialQuery) url.searchParams.append(k, v);
}

/// An answer with every secret blanked, in its headers and body.
function blanked(res) {
  return {
    status: res.status,
    headers: res.headers.map(([k, v]) => [k, blanker.text(v)]),
    body: blanker.bytes(res.body),
  };
}

export function httpFetch(request) {
  return hostCall(() => fetchChecked(request));
}

function fetchChecked(request) {
  stats.requests += 1;
  for (const [name] of request.headers) {
    if (isHostOnlyHeader(name)) {
      return { tag: 'err', val: { tag: 'invalid-request', val: `header \`${printable(name, 200)}\` is set by the host, not the connector` } };
    }
  }
  const method = request.method.toUpperCase();
  if (!settings.methods.includes(method)) {
    return denied(`\`${method}\` is not allowed: a sync reads (GET and HEAD, and POST in a stream whose \`method\` is POST); http.allow_methods allows more`);
  }
  let url;
  try {
    url = new URL(request.url);
  } catch {
    return { tag: 'err', val: { tag: 'invalid-request', val: `\`${printable(request.url, 1024)}\` is not a URL` } };
  }
  const hop = {
    method,
    body: request.body,
    headers: Object.fromEntries(request.headers.map(([k, v]) => [k.toLowerCase(), v])),
  };
  for (let n = 0; n <= settings.maxRedirects; n++) {
    if (!['http:', 'https:'].includes(url.protocol) || !settings.allowedOrigins.includes(originOf(url))) {
      return denied(`${printable(url.href, 1024)}: ${printable(originOf(url), 200)} is not an allowed host`);
    }
    const sent = new URL(url);
    const headers = { ...hop.headers };
    withCredentials(sent, headers);
    const answer = fetchOnce({
      url: sent.href,
      method: hop.method,
      headers,
      body: hop.body,
      timeoutMs: settings.timeoutMs,
      maxBytes: settings.maxBytes,
      policy: settings.policy,
    });
    if (answer.tag === 'err') {
      if (answer.val.tag === 'denied') log('warn', `sandbox: refused ${url.href}: ${answer.val.val}`, 'host');
      if (typeof answer.val.val === 'string') answer.val.val = blanker.text(answer.val.val);
      return answer;
    }
    const res = blanked(answer.val);
    stats.bytes += res.body.byteLength;
    const location = res.headers.find(([k]) => k === 'location')?.[1];
    if ([301, 302, 303, 307, 308].includes(res.status) && location !== undefined) {
      try {
        url = followRedirect(url, res.status, location, hop);
      } catch (e) {
        if (e?.tag === 'denied') return denied(e.val);
        if (e?.tag) return { tag: 'err', val: e };
        throw e;
      }
      continue;
    }
    return { tag: 'ok', val: res };
  }
  return { tag: 'err', val: { tag: 'other', val: `more than ${settings.maxRedirects} redirects from ${printable(request.url, 1024)}` } };
}

// --- upsert and checkpoint: a JSON file, written anew at each checkpoint
// (warehouse-file.mjs: created exclusively, private, renamed into place).
// ignoreBOM: a text that starts with U+FEFF keeps it, as the Rust host does.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

class InvalidBatch extends Error {}

// The WIT's `cell-kind` codes: each case's index.
const KIND = Object.freeze({
  NULL: 0, BOOLEAN: 1, INTEGER: 2, FLOAT: 3, STRING: 4, UTC_DATETIME: 5, JSON: 6,
});

// The rows of a WIT `row-batch`, each an array of plain values: a cell is
// a kind code in `kinds` and a 64-bit word in `words` (row after row), and
// text cells are spans of the batch's UTF-8 `text` (a Uint8Array here).
// Throws InvalidBatch as the WIT says a host refuses a batch.
function rowsOf(batch) {
  const width = batch.columns.length;
  if (width === 0) throw new InvalidBatch('a batch with no columns');
  const { kinds, words, text } = batch;
  if (kinds.length !== words.length) {
    throw new InvalidBatch(`${kinds.length} kinds for ${words.length} words: a batch has one of each per cell`);
  }
  if (kinds.length % width !== 0) {
    throw new InvalidBatch(`${kinds.length} cells do not make whole rows of ${width} columns`);
  }
  try { utf8.decode(text); } catch { throw new InvalidBatch("the batch's text is not UTF-8"); }
  // A string or JSON cell's word is a span of the text: the start in the
  // low 32 bits, the length in the high 32 (the WIT's `cell-kind`).
  const str = (word) => {
    const start = Number(word & 0xffffffffn);
    const len = Number(word >> 32n);
    if (start + len > text.length) throw new InvalidBatch(`the span ${start}+${len} is outside the batch's ${text.length} bytes of text`);
    try { return utf8.decode(text.subarray(start, start + len)); } catch {
      throw new InvalidBatch(`the span ${start}+${len} cuts a character`);
    }
  };
  const bits = new DataView(new ArrayBuffer(8));
  const signed = (word) => BigInt.asIntN(64, word);
  // One cell, by its kind code: the index of the WIT's `cell-kind` case.
  const plain = (kind, word) => {
    switch (kind) {
      case KIND.NULL:
        if (word !== 0n) throw new InvalidBatch(`a null's word is ${word}, not 0`);
        return null;
      case KIND.BOOLEAN:
        if (word > 1n) throw new InvalidBatch(`a boolean's word is ${word}, not 0 or 1`);
        return word === 1n;
      case KIND.INTEGER: {
        const n = signed(word);
        return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n.toString();
      }
      case KIND.FLOAT:
        bits.setBigUint64(0, word);
        return bits.getFloat64(0);
      case KIND.STRING: return str(word);
      case KIND.UTC_DATETIME: {
        // Microseconds, floored to the millisecond a Date holds (as the Rust
        // host's div_euclid); past what a Date can hold, the number itself.
        const micros = signed(word);
        const ms = micros / 1000n - (micros % 1000n < 0n ? 1n : 0n);
        if (ms < -8640000000000000n || ms > 8640000000000000n) return micros.toString();
        return new Date(Number(ms)).toISOString().replace('.000Z', 'Z');
      }
      case KIND.JSON: {
        // Kept as text when it does not parse, as the Rust host does.
        const json = str(word);
        try { return JSON.parse(json); } catch { return json; }
      }
      default: throw new InvalidBatch(`${kind} is not a cell kind (0 to 6)`);
    }
  };
  const rows = [];
  for (let at = 0; at < kinds.length; at += width) {
    const row = [];
    for (let i = at; i < at + width; i++) {
      try { row.push(plain(kinds[i], BigInt(words[i]))); } catch (e) {
        // Named as the Rust host names it: the row and the column.
        if (e instanceof InvalidBatch) throw new InvalidBatch(`row ${rows.length} column \`${batch.columns[i - at]}\`: ${e.message}`);
        throw e;
      }
    }
    rows.push(row);
  }
  return rows;
}

// What a batch stands for in bytes, as the Rust host weighs it: the text
// every string or JSON cell points at, each time it is pointed at, and the
// column names once per row.
function weight(batch) {
  let bytes = 0;
  for (let i = 0; i < batch.kinds.length; i++) {
    if (batch.kinds[i] === KIND.STRING || batch.kinds[i] === KIND.JSON) bytes += Number(BigInt(batch.words[i]) >> 32n);
  }
  const names = batch.columns.reduce((n, c) => n + utf8Length(c), 0);
  return bytes + names * Math.floor(batch.kinds.length / Math.max(batch.columns.length, 1));
}

const utf8Length = (s) => Buffer.byteLength(s, 'utf8');

// Runs `write` over the rows of `batch`; a malformed batch is the guest's
// `invalid-batch`. A batch that weighs more than one call may pass stops the
// guest, as the Rust host's hostcall limit does: repeating one span cannot
// make the warehouse write more than the guest could have sent.
function withRows(batch, write) {
  if (weight(batch) > settings.maxCallBytes) {
    throw new Error(`the connector passed more than ${settings.maxCallBytes / (1 << 20)} MiB to one host call`);
  }
  let rows;
  try { rows = rowsOf(batch); } catch (e) {
    if (e instanceof InvalidBatch) return { tag: 'err', val: { tag: 'invalid-batch', val: e.message } };
    throw e;
  }
  return write(rows);
}

export function upsert(table, batch) {
  return hostCall(() => upsertNow(table, batch));
}

function upsertNow(table, batch) {
  const keys = settings.primaryKeys[table];
  if (!keys) return { tag: 'err', val: { tag: 'unknown-table', val: table } };
  return withRows(batch, (rows) => {
    const records = [];
    for (const row of rows) {
      const record = {};
      batch.columns.forEach((c, i) => { record[c] = row[i]; });
      if (keys.some((k) => record[k] === null || record[k] === undefined)) {
        return { tag: 'err', val: { tag: 'invalid-batch', val: `a row without its key ${keys.join(', ')}` } };
      }
      records.push([table, JSON.stringify(keys.map((k) => record[k])), record]);
    }
    for (const r of records) pending.push(r);
    stats.rows_upserted[table] = (stats.rows_upserted[table] ?? 0) + rows.length;
    return { tag: 'ok', val: undefined };
  });
}

// Deletes by primary key (hard: this small host keeps no soft-delete marks),
// applied in order with the upserts at the next checkpoint.
function _delete(table, keys) {
  return hostCall(() => deleteNow(table, keys));
}

function deleteNow(table, keys) {
  const pk = settings.primaryKeys[table];
  if (!pk) return { tag: 'err', val: { tag: 'unknown-table', val: table } };
  return withRows(keys, (rows) => {
    for (const row of rows) {
      const record = {};
      keys.columns.forEach((c, i) => { record[c] = row[i]; });
      pending.push([table, JSON.stringify(pk.map((k) => record[k])), null]);
    }
    return { tag: 'ok', val: undefined };
  });
}
export { _delete as delete };

// Empties the table at the next checkpoint, before the rows upserted after it
// (a full_refresh stream, before its first rows).
export function truncate(table) {
  return hostCall(() => truncateNow(table));
}

function truncateNow(table) {
  if (!settings.primaryKeys[table]) return { tag: 'err', val: { tag: 'unknown-table', val: table } };
  pending.push([table, null, null]);
  return { tag: 'ok', val: undefined };
}

/// The largest state one checkpoint may save (the Rust host's).
const MAX_STATE_BYTES = 16 << 20;

export function checkpoint(state) {
  return hostCall(() => {
    stats.checkpoints += 1;
    if (stats.checkpoints > settings.maxCheckpoints) {
      throw new Error(`the connector made more than ${settings.maxCheckpoints} checkpoints in one run and was stopped; raise sandbox.max_checkpoints if it needs more`);
    }
    if (Buffer.byteLength(state) > MAX_STATE_BYTES) {
      throw new Error(`the connector saved a state of more than ${MAX_STATE_BYTES >> 20} MiB and was stopped`);
    }
    for (const [table, key, record] of pending) {
      const rows = (warehouse.tables[table] ??= {});
      if (key === null) warehouse.tables[table] = {};
      else if (record === null) delete rows[key];
      else rows[key] = record;
    }
    pending = [];
    warehouse.state = state;
    try {
      writePrivate(settings.warehouseFile, JSON.stringify(warehouse));
    } catch (e) {
      return { tag: 'err', val: { tag: 'other', val: String(e.message ?? e) } };
    }
    return { tag: 'ok', val: undefined };
  });
}

// Rows after the last checkpoint are dropped when a sync fails.
export function rollback() {
  pending = [];
}

// The connector's log, as the Rust host prints it: control characters
// escaped, each line cut to 4 KiB, secrets blanked, and the run's log
// capped at 1 MiB (the line past it says so).
const MAX_LOG_LINE = 4 << 10;
const MAX_LOG_BYTES = 1 << 20;
let logged = 0;
let capped = false;

export function log(level, message, who = 'connector') {
  if (level === 'debug' && !process.env.INCSYNC_DEBUG) return;
  if (capped) return;
  if (logged >= MAX_LOG_BYTES) {
    capped = true;
    emit(`${who} warn: the connector logged more than ${MAX_LOG_BYTES >> 10} KiB; its further log lines are dropped`);
    return;
  }
  const line = printable(message, MAX_LOG_LINE, blanker);
  logged += line.length + 64;
  emit(`${who} ${level}: ${line}`);
}

// To the supervisor, which prints it (this thread's own stderr is the
// guest's, which the supervisor escapes and caps).
function emit(line) {
  if (parentPort) parentPort.postMessage({ type: 'log', line });
  else process.stderr.write(`${line}\n`);
}
