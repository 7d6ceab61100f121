// Test doubles for the protocol client: a manual clock and a fake WebSocket.

export class FakeTimers {
  constructor() {
    this.t = 0;
    this.seq = 0;
    this.tasks = new Map(); // id -> {at, fn, every}
  }

  now() { return this.t; }

  setTimeout(fn, ms) {
    const id = ++this.seq;
    this.tasks.set(id, { at: this.t + ms, fn, every: 0 });
    return id;
  }

  setInterval(fn, ms) {
    const id = ++this.seq;
    this.tasks.set(id, { at: this.t + ms, fn, every: ms });
    return id;
  }

  clearTimeout(id) { this.tasks.delete(id); }

  clearInterval(id) { this.tasks.delete(id); }

  pendingCount() { return this.tasks.size; }

  /** Moves the clock forward, running due tasks in time order. */
  advance(ms) {
    const end = this.t + ms;
    for (;;) {
      let next = null;
      for (const [id, task] of this.tasks) {
        if (task.at <= end && (next === null || task.at < next[1].at)) next = [id, task];
      }
      if (next === null) break;
      const [id, task] = next;
      this.t = task.at;
      if (task.every > 0) task.at += task.every;
      else this.tasks.delete(id);
      task.fn();
    }
    this.t = end;
  }
}

/** A WebSocket stand-in: records sent frames, lets the test play the server. */
export class FakeWebSocket {
  static instances = [];

  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    this.closed = false;
    this.binaryType = 'blob';
    FakeWebSocket.instances.push(this);
  }

  static last() { return FakeWebSocket.instances[FakeWebSocket.instances.length - 1]; }

  send(data) {
    if (this.readyState !== 1) throw new Error('send on a socket that is not open');
    this.sent.push(new Uint8Array(data));
  }

  close() {
    if (this.readyState >= 2) return;
    this.readyState = 3;
    this.closed = true;
  }

  // --- test side ---
  serverOpen() {
    this.readyState = 1;
    this.onopen?.({});
  }

  serverSend(bytes) {
    const u8 = bytes instanceof Uint8Array ? bytes : Uint8Array.from(bytes);
    // Deliver as an ArrayBuffer holding exactly the frame, as a browser does.
    const ab = u8.buffer.slice(u8.byteOffset, u8.byteOffset + u8.byteLength);
    this.onmessage?.({ data: ab });
  }

  serverClose(code = 1006, reason = '') {
    this.readyState = 3;
    this.onclose?.({ code, reason, wasClean: code === 1000 });
  }
}

/** Concatenates byte arrays / arrays of numbers / strings (as UTF-8). */
export function bytes(...parts) {
  const enc = new TextEncoder();
  const chunks = parts.map((p) => (typeof p === 'string' ? enc.encode(p) : Uint8Array.from(p)));
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let off = 0;
  for (const c of chunks) { out.set(c, off); off += c.length; }
  return out;
}

export function hex(u8) {
  return Array.from(u8, (b) => b.toString(16).padStart(2, '0')).join(' ');
}
