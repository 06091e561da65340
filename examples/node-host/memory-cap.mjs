// Caps a core WebAssembly module's linear memory, as the Rust host's
// `sandbox.memory_mb` does through wasmtime's limiter: every memory the
// module defines gets a maximum of at most `pages` (64 KiB each), so a
// `memory.grow` past it fails inside the guest (a Rust guest then aborts
// with "memory allocation of N bytes failed"), whatever the guest does
// between host calls. V8 then reserves no more than that either.

function readLeb(bytes, at) {
  let value = 0;
  let shift = 0;
  for (;;) {
    const b = bytes[at++];
    value += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if (!(b & 0x80)) return [value, at];
  }
}

function leb(value) {
  const out = [];
  do {
    let b = value % 128;
    value = Math.floor(value / 128);
    if (value > 0) b |= 0x80;
    out.push(b);
  } while (value > 0);
  return out;
}

/// `module` (the bytes of a core module) with every defined 32-bit memory's
/// maximum at most `pages`. Throws if a memory must start larger.
export function capMemory(module, pages) {
  const bytes = new Uint8Array(module);
  if (bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    throw new Error('not a core WebAssembly module');
  }
  const parts = [bytes.subarray(0, 8)];
  let at = 8;
  let capped = 0;
  while (at < bytes.length) {
    const id = bytes[at];
    const [size, body] = readLeb(bytes, at + 1);
    const end = body + size;
    if (id !== 5) {
      parts.push(bytes.subarray(at, end));
      at = end;
      continue;
    }
    let [count, p] = readLeb(bytes, body);
    const content = [...leb(count)];
    for (let i = 0; i < count; i++) {
      const flags = bytes[p++];
      if (flags > 1) throw new Error(`a memory with limits flags ${flags} (shared or 64-bit) cannot be capped`);
      let min;
      let max = Infinity;
      [min, p] = readLeb(bytes, p);
      if (flags & 1) [max, p] = readLeb(bytes, p);
      if (min > pages) {
        throw new Error(`the connector needs ${Math.ceil(min / 16)} MiB of memory to start, more than sandbox.memory_mb`);
      }
      content.push(1, ...leb(min), ...leb(Math.min(max, pages)));
      capped += 1;
    }
    parts.push(Uint8Array.from([5, ...leb(content.length), ...content]));
    at = end;
  }
  const out = new Uint8Array(parts.reduce((n, x) => n + x.length, 0));
  let w = 0;
  for (const x of parts) {
    out.set(x, w);
    w += x.length;
  }
  return { bytes: out, capped };
}
