// A small client for the Pomelo 2.x "hybridconnector" websocket protocol.
//
// Plain ES module, no dependencies, no build step: it runs in browsers and in
// Node (the unit tests inject a fake WebSocket). The codec functions are pure
// and exported for the tests; PomeloClient does the handshake, heartbeats,
// requests, notifies and pushes over one websocket.

export const PackageType = Object.freeze({
  HANDSHAKE: 1,
  HANDSHAKE_ACK: 2,
  HEARTBEAT: 3,
  DATA: 4,
  KICK: 5,
});

export const MessageType = Object.freeze({
  REQUEST: 0,
  NOTIFY: 1,
  RESPONSE: 2,
  PUSH: 3,
});

export const HEADER_LEN = 4;
export const MAX_BODY_LEN = 0xffffff;
const MAX_ROUTE_LEN = 255;
const MAX_ID = 0xffffffff;

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8');

/** UTF-8 bytes of a string. */
export function strencode(s) {
  return utf8Encoder.encode(s);
}

/** String from UTF-8 bytes. */
export function strdecode(bytes) {
  return utf8Decoder.decode(bytes);
}

function toBytes(body) {
  if (body == null) return new Uint8Array(0);
  if (body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  if (typeof body === 'string') return strencode(body);
  throw new TypeError('pomelo: body must be bytes or a string');
}

/** Encodes one package: type byte, 3-byte big-endian length, body. */
export function encodePackage(type, body) {
  const b = toBytes(body);
  if (b.length > MAX_BODY_LEN) {
    throw new RangeError(`pomelo: package body of ${b.length} bytes exceeds ${MAX_BODY_LEN}`);
  }
  const out = new Uint8Array(HEADER_LEN + b.length);
  const dv = new DataView(out.buffer);
  dv.setUint8(0, type);
  dv.setUint8(1, (b.length >> 16) & 0xff);
  dv.setUint16(2, b.length & 0xffff);
  out.set(b, HEADER_LEN);
  return out;
}

/**
 * Decodes every package of one websocket frame (a server may put several in
 * one frame). Returns [{type, body}], bodies are views into the input.
 * Throws on a truncated package or an unknown type.
 */
export function decodePackages(data) {
  const buf = toBytes(data);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out = [];
  let off = 0;
  while (off < buf.length) {
    if (buf.length - off < HEADER_LEN) {
      throw new Error(`pomelo: truncated package header (${buf.length - off} bytes)`);
    }
    const type = dv.getUint8(off);
    if (type < PackageType.HANDSHAKE || type > PackageType.KICK) {
      throw new Error(`pomelo: unknown package type ${type}`);
    }
    const len = (dv.getUint8(off + 1) << 16) | dv.getUint16(off + 2);
    off += HEADER_LEN;
    if (buf.length - off < len) {
      throw new Error(`pomelo: package body of ${len} bytes has ${buf.length - off}`);
    }
    out.push({ type, body: buf.subarray(off, off + len) });
    off += len;
  }
  return out;
}

const hasId = (t) => t === MessageType.REQUEST || t === MessageType.RESPONSE;
const hasRoute = (t) => t === MessageType.REQUEST || t === MessageType.NOTIFY || t === MessageType.PUSH;

/** Appends pomelo's message id encoding (base 128, low group first) to arr. */
function pushVarint(arr, id) {
  let v = id;
  do {
    let b = v % 128;
    v = Math.floor(v / 128);
    if (v > 0) b |= 0x80;
    arr.push(b);
  } while (v > 0);
}

/** Bytes of a message id: 1 -> [01], 128 -> [80 01]. */
export function encodeId(id) {
  if (!Number.isInteger(id) || id < 0 || id > MAX_ID) {
    throw new RangeError(`pomelo: bad message id ${id}`);
  }
  const out = [];
  pushVarint(out, id);
  return Uint8Array.from(out);
}

/**
 * Encodes the message layer. msg: {type, id?, route?, routeCode?, body?}.
 * routeCode (a number) compresses the route to 2 bytes; otherwise the route
 * goes as a length byte + UTF-8.
 */
export function encodeMessage(msg) {
  const { type } = msg;
  if (type < MessageType.REQUEST || type > MessageType.PUSH) {
    throw new RangeError(`pomelo: unknown message type ${type}`);
  }
  const head = [];
  const compressed = hasRoute(type) && Number.isInteger(msg.routeCode);
  head.push((type << 1) | (compressed ? 1 : 0));
  if (hasId(type)) {
    const id = msg.id ?? 0;
    if (!Number.isInteger(id) || id < 0 || id > MAX_ID) {
      throw new RangeError(`pomelo: bad message id ${id}`);
    }
    pushVarint(head, id);
  }
  if (hasRoute(type)) {
    if (compressed) {
      head.push((msg.routeCode >> 8) & 0xff, msg.routeCode & 0xff);
    } else {
      const r = strencode(msg.route ?? '');
      if (r.length > MAX_ROUTE_LEN) {
        throw new RangeError(`pomelo: route of ${r.length} bytes exceeds ${MAX_ROUTE_LEN}`);
      }
      head.push(r.length, ...r);
    }
  }
  const body = toBytes(msg.body);
  const out = new Uint8Array(head.length + body.length);
  out.set(head, 0);
  out.set(body, head.length);
  return out;
}

/**
 * Decodes the body of a DATA package into {type, id, route, routeCode,
 * compressed, gzip, body}. A compressed route leaves route undefined and
 * routeCode set; the client resolves it through the dictionary.
 */
export function decodeMessage(data) {
  const b = toBytes(data);
  if (b.length < 1) throw new Error('pomelo: empty message');
  const flag = b[0];
  if (flag & 0xe0) throw new Error(`pomelo: flag byte 0x${flag.toString(16)} has reserved bits set`);
  const type = (flag >> 1) & 0x07;
  if (type > MessageType.PUSH) throw new Error(`pomelo: unknown message type ${type}`);
  const m = { type, id: 0, route: undefined, routeCode: undefined, compressed: false, gzip: (flag & 0x10) !== 0, body: null };
  let off = 1;
  if (hasId(type)) {
    let id = 0;
    let mul = 1;
    let i = 0;
    for (;;) {
      if (off >= b.length) throw new Error('pomelo: truncated message id');
      if (i >= 5) throw new Error('pomelo: message id longer than 5 bytes');
      const byte = b[off++];
      id += (byte & 0x7f) * mul;
      mul *= 128;
      i++;
      if ((byte & 0x80) === 0) break;
    }
    if (id > MAX_ID) throw new Error('pomelo: message id overflows 32 bits');
    m.id = id;
  }
  if (hasRoute(type)) {
    if (flag & 1) {
      if (b.length < off + 2) throw new Error('pomelo: truncated compressed route');
      m.compressed = true;
      m.routeCode = (b[off] << 8) | b[off + 1];
      off += 2;
    } else {
      if (b.length < off + 1) throw new Error('pomelo: truncated route length');
      const rl = b[off++];
      if (b.length < off + rl) throw new Error(`pomelo: route of ${rl} bytes has ${b.length - off}`);
      m.route = strdecode(b.subarray(off, off + rl));
      off += rl;
    }
  } else if (flag & 1) {
    throw new Error('pomelo: compressed-route flag on a response');
  }
  m.body = b.subarray(off);
  return m;
}

// ---------------------------------------------------------------------------
// Minimal pomelo-protobuf decoding, for servers that announce sys.protos with
// useProto (the stock chat app declares onChat). A pomelo server's handshake
// carries its schemas parsed, as pomelo-protobuf keeps them:
// {"onChat": {"msg": {"option": "required", "type": "string", "tag": 1}, ...,
//  "__messages": {"Sub": {...}}, "__tags": {"1": "msg", ...}}}.
// The source form of config/serverProtos.json is read too:
// {"onChat": {"required string msg": 1, ...}, "message Sub": {...}}.

function readVarint(b, pos) {
  let v = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    if (pos.off >= b.length) throw new Error('protobuf: truncated varint');
    const byte = b[pos.off++];
    v += (byte & 0x7f) * mul;
    mul *= 128;
    if ((byte & 0x80) === 0) return v;
  }
  throw new Error('protobuf: varint too long');
}

function parseSchema(schema) {
  const fields = new Map();
  const nested = {};
  for (const [key, val] of Object.entries(schema)) {
    if (key === '__messages') {
      Object.assign(nested, val);
      continue;
    }
    if (key === '__tags') continue;
    if (val !== null && typeof val === 'object' && typeof val.tag === 'number' && typeof val.type === 'string') {
      fields.set(val.tag, { option: val.option, type: val.type, name: key });
      continue;
    }
    const parts = key.split(/\s+/);
    if (parts[0] === 'message' && parts.length === 2) {
      nested[parts[1]] = val;
    } else if (parts.length === 3) {
      fields.set(val, { option: parts[0], type: parts[1], name: parts[2] });
    }
  }
  return { fields, nested };
}

function skipField(b, pos, wire) {
  switch (wire) {
    case 0: readVarint(b, pos); break;
    case 1: pos.off += 8; break;
    case 2: pos.off += readVarint(b, pos); break;
    case 5: pos.off += 4; break;
    default: throw new Error(`protobuf: unknown wire type ${wire}`);
  }
  if (pos.off > b.length) throw new Error('protobuf: truncated field');
}

function decodeValue(b, pos, type, scope) {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  switch (type) {
    case 'uInt32': case 'uInt64': case 'int32': case 'int64':
      return readVarint(b, pos);
    case 'sInt32': case 'sInt64': {
      const v = readVarint(b, pos);
      return v % 2 === 1 ? -(v + 1) / 2 : v / 2;
    }
    case 'bool':
      return readVarint(b, pos) !== 0;
    case 'float': {
      const v = dv.getFloat32(pos.off, true); pos.off += 4; return v;
    }
    case 'double': {
      const v = dv.getFloat64(pos.off, true); pos.off += 8; return v;
    }
    case 'string': {
      const n = readVarint(b, pos);
      if (pos.off + n > b.length) throw new Error('protobuf: truncated string');
      const s = strdecode(b.subarray(pos.off, pos.off + n)); pos.off += n; return s;
    }
    default: {
      const sub = scope[type];
      if (!sub) throw new Error(`protobuf: unknown type ${type}`);
      const n = readVarint(b, pos);
      if (pos.off + n > b.length) throw new Error('protobuf: truncated message');
      const v = decodeProtobuf(b.subarray(pos.off, pos.off + n), sub, scope); pos.off += n; return v;
    }
  }
}

/** Decodes protobuf bytes with a pomelo-protobuf JSON schema. */
export function decodeProtobuf(bytes, schema, outerScope = {}) {
  const b = toBytes(bytes);
  const { fields, nested } = parseSchema(schema);
  const scope = { ...outerScope, ...nested };
  const out = {};
  const pos = { off: 0 };
  while (pos.off < b.length) {
    const key = readVarint(b, pos);
    const tag = Math.floor(key / 8);
    const wire = key % 8;
    const f = fields.get(tag);
    if (!f) { skipField(b, pos, wire); continue; }
    const v = decodeValue(b, pos, f.type, scope);
    if (f.option === 'repeated') (out[f.name] ??= []).push(v);
    else out[f.name] = v;
  }
  return out;
}

// ---------------------------------------------------------------------------
// The client.

export const CLIENT_HANDSHAKE = Object.freeze({
  sys: { type: 'js-websocket', version: '0.0.1', rsa: {} },
  user: {},
});

/** Error raised for a failed handshake, a closed connection or a kick. */
export class PomeloError extends Error {
  constructor(message, code) {
    super(message);
    this.name = 'PomeloError';
    this.code = code;
  }
}

/**
 * PomeloClient: one websocket to a pomelo server.
 *
 *   const c = new PomeloClient();
 *   await c.connect('ws://127.0.0.1:3014/');
 *   const res = await c.request('gate.gateHandler.queryEntry', {uid: 'alice'});
 *   c.on('onChat', (msg) => ...);
 *   c.on('close', ({code, reason, kicked}) => ...);
 *
 * Events: any push route, plus 'close' (once, after connect resolved),
 * 'kick' ({reason}), 'error' (a protocol error, the socket is then closed).
 * Options: WebSocket (constructor, default globalThis.WebSocket),
 * requestTimeoutMs (default 10000; 0 = none), handshakeTimeoutMs (default 10000),
 * timers ({setTimeout, clearTimeout, setInterval, clearInterval, now}) for tests.
 */
export class PomeloClient {
  constructor(opts = {}) {
    this.WebSocket = opts.WebSocket ?? globalThis.WebSocket;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 10000;
    this.handshakeTimeoutMs = opts.handshakeTimeoutMs ?? 10000;
    this.timers = opts.timers ?? {
      setTimeout: (f, ms) => setTimeout(f, ms),
      clearTimeout: (id) => clearTimeout(id),
      setInterval: (f, ms) => setInterval(f, ms),
      clearInterval: (id) => clearInterval(id),
      now: () => Date.now(),
    };
    this.handshakeBody = opts.handshake ?? CLIENT_HANDSHAKE;
    this.ws = null;
    this.state = 'idle'; // idle, connecting, open, closed
    this.nextId = 1;
    this.pending = new Map(); // id -> {route, resolve, reject, timer}
    this.listeners = new Map();
    this.routeToCode = {};
    this.codeToRoute = {};
    this.protos = null;
    this.heartbeatMs = 0;
    this.heartbeatTimeoutMs = 0;
    this.heartbeatTimer = null;
    this.watchdogTimer = null;
    this.lastRecv = 0;
    this.closeInfo = null;
  }

  on(event, fn) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event).add(fn);
    return () => this.off(event, fn);
  }

  off(event, fn) {
    this.listeners.get(event)?.delete(fn);
  }

  emit(event, arg) {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(arg);
      } catch (e) {
        // A listener's bug must not break the protocol loop.
        if (typeof console !== 'undefined') console.error(e);
      }
    }
  }

  /** Opens the websocket and completes the handshake. Resolves with the server's sys. */
  connect(url) {
    if (this.state !== 'idle') return Promise.reject(new PomeloError('pomelo: client already used'));
    this.state = 'connecting';
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (err) => {
        if (settled) return;
        settled = true;
        reject(err);
      };
      this.onHandshake = (sys) => {
        if (settled) return;
        settled = true;
        resolve(sys);
      };
      this.onConnectFail = fail;
      const hsTimer = this.handshakeTimeoutMs > 0
        ? this.timers.setTimeout(() => this.shutdown(new PomeloError('pomelo: handshake timed out', 'timeout')), this.handshakeTimeoutMs)
        : null;
      this.clearHandshakeTimer = () => { if (hsTimer !== null) this.timers.clearTimeout(hsTimer); };
      let ws;
      try {
        ws = new this.WebSocket(url);
      } catch (e) {
        this.clearHandshakeTimer();
        this.state = 'closed';
        fail(new PomeloError(`pomelo: cannot open ${url}: ${e.message}`, 'connect'));
        return;
      }
      this.ws = ws;
      ws.binaryType = 'arraybuffer';
      ws.onopen = () => {
        this.lastRecv = this.timers.now();
        this.sendRaw(encodePackage(PackageType.HANDSHAKE, JSON.stringify(this.handshakeBody)));
      };
      ws.onmessage = (ev) => this.onFrame(ev.data);
      ws.onerror = () => { /* onclose follows and carries the details */ };
      ws.onclose = (ev) => this.shutdown(null, ev);
    });
  }

  sendRaw(bytes) {
    if (this.ws && this.ws.readyState === 1) this.ws.send(bytes);
  }

  onFrame(data) {
    if (this.state === 'closed') return;
    this.lastRecv = this.timers.now();
    let pkgs;
    try {
      if (typeof data === 'string') throw new Error('pomelo: text frame');
      pkgs = decodePackages(data);
    } catch (e) {
      this.protocolError(e);
      return;
    }
    for (const p of pkgs) {
      if (this.state === 'closed') return;
      try {
        this.onPackage(p);
      } catch (e) {
        this.protocolError(e);
        return;
      }
    }
  }

  protocolError(e) {
    this.emit('error', e);
    this.shutdown(new PomeloError(e.message, 'protocol'));
  }

  onPackage(p) {
    switch (p.type) {
      case PackageType.HANDSHAKE:
        this.onHandshakePackage(p.body);
        break;
      case PackageType.HEARTBEAT:
        // The server answered (or started) a heartbeat: lastRecv is updated
        // already; the interval timer sends ours.
        break;
      case PackageType.DATA:
        if (this.state !== 'open') return; // DATA before the handshake: ignore
        this.onMessage(decodeMessage(p.body));
        break;
      case PackageType.KICK: {
        let reason = 'kick';
        try {
          reason = JSON.parse(strdecode(p.body)).reason ?? reason;
        } catch { /* keep default */ }
        this.kickReason = reason;
        this.emit('kick', { reason });
        break;
      }
      default:
        // HANDSHAKE_ACK is client->server only.
        throw new Error(`pomelo: unexpected package type ${p.type}`);
    }
  }

  onHandshakePackage(body) {
    if (this.state !== 'connecting') throw new Error('pomelo: handshake after connect');
    const res = JSON.parse(strdecode(body));
    if (res.code === 501) {
      this.shutdown(new PomeloError('pomelo: server says this client is too old', 501));
      return;
    }
    if (res.code !== 200) {
      this.shutdown(new PomeloError(`pomelo: handshake refused (code ${res.code})`, res.code));
      return;
    }
    const sys = res.sys ?? {};
    const dict = sys.routeToCode ?? sys.dict ?? {};
    this.routeToCode = { ...dict };
    this.codeToRoute = {};
    if (sys.codeToRoute) {
      for (const [code, route] of Object.entries(sys.codeToRoute)) this.codeToRoute[code] = route;
    } else {
      for (const [route, code] of Object.entries(dict)) this.codeToRoute[code] = route;
    }
    if (sys.useDict === false) this.routeToCode = {};
    if (sys.useProto && sys.protos) this.protos = sys.protos;
    this.heartbeatMs = (sys.heartbeat ?? 0) * 1000;
    this.heartbeatTimeoutMs = this.heartbeatMs * 2;
    this.clearHandshakeTimer();
    this.state = 'open';
    this.sendRaw(encodePackage(PackageType.HANDSHAKE_ACK));
    if (this.heartbeatMs > 0) this.startHeartbeat();
    this.onHandshake(sys);
  }

  startHeartbeat() {
    // Send a heartbeat every interval; the server echoes it. If nothing at all
    // arrives for 2 x interval the connection is dead: close it.
    this.heartbeatTimer = this.timers.setInterval(() => {
      this.sendRaw(encodePackage(PackageType.HEARTBEAT));
    }, this.heartbeatMs);
    const tick = Math.max(50, Math.min(1000, this.heartbeatMs / 4));
    this.watchdogTimer = this.timers.setInterval(() => {
      if (this.timers.now() - this.lastRecv > this.heartbeatTimeoutMs) {
        this.shutdown(new PomeloError('pomelo: heartbeat timeout', 'heartbeat'));
      }
    }, tick);
  }

  onMessage(m) {
    if (m.type === MessageType.RESPONSE) {
      const p = this.pending.get(m.id);
      if (!p) return; // late response after a timeout
      this.pending.delete(m.id);
      if (p.timer !== null) this.timers.clearTimeout(p.timer);
      let body;
      try {
        body = this.decodeBody(p.route, m.body, false);
      } catch (e) {
        p.reject(e);
        return;
      }
      p.resolve(body);
      return;
    }
    if (m.type === MessageType.PUSH) {
      let route = m.route;
      if (m.compressed) {
        route = this.codeToRoute[m.routeCode];
        if (route === undefined) throw new Error(`pomelo: unknown route code ${m.routeCode}`);
      }
      const body = this.decodeBody(route, m.body, true);
      this.emit(route, body);
      return;
    }
    throw new Error(`pomelo: unexpected ${m.type === MessageType.REQUEST ? 'request' : 'notify'} from server`);
  }

  decodeBody(route, bytes, isPush) {
    const schema = this.protos?.server?.[route];
    if (schema && isPush) return decodeProtobuf(bytes, schema, this.protos.server);
    if (bytes.length === 0) return {};
    return JSON.parse(strdecode(bytes));
  }

  encodeRequest(type, id, route, msg) {
    const code = this.routeToCode[route];
    return encodePackage(PackageType.DATA, encodeMessage({
      type,
      id,
      route,
      routeCode: Number.isInteger(code) ? code : undefined,
      body: JSON.stringify(msg ?? {}),
    }));
  }

  /** Sends a request; resolves with the response body (an object). */
  request(route, msg) {
    if (this.state !== 'open') return Promise.reject(new PomeloError('pomelo: not connected', 'closed'));
    const id = this.nextId;
    this.nextId = this.nextId >= MAX_ID ? 1 : this.nextId + 1;
    let bytes;
    try {
      bytes = this.encodeRequest(MessageType.REQUEST, id, route, msg);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise((resolve, reject) => {
      const timer = this.requestTimeoutMs > 0
        ? this.timers.setTimeout(() => {
          this.pending.delete(id);
          reject(new PomeloError(`pomelo: ${route} timed out`, 'timeout'));
        }, this.requestTimeoutMs)
        : null;
      this.pending.set(id, { route, resolve, reject, timer });
      this.sendRaw(bytes);
    });
  }

  /** Sends a notify (no response). */
  notify(route, msg) {
    if (this.state !== 'open') throw new PomeloError('pomelo: not connected', 'closed');
    this.sendRaw(this.encodeRequest(MessageType.NOTIFY, 0, route, msg));
  }

  /** Closes the connection; emits 'close' with {code: 'client'}. */
  close() {
    this.shutdown(new PomeloError('pomelo: closed by client', 'client'));
  }

  /** Tears everything down once: timers, pending requests, the socket. */
  shutdown(err, ev) {
    if (this.state === 'closed') return;
    const wasOpen = this.state === 'open';
    this.state = 'closed';
    if (this.clearHandshakeTimer) this.clearHandshakeTimer();
    if (this.heartbeatTimer !== null) this.timers.clearInterval(this.heartbeatTimer);
    if (this.watchdogTimer !== null) this.timers.clearInterval(this.watchdogTimer);
    this.heartbeatTimer = this.watchdogTimer = null;
    const reason = err ? err.message
      : this.kickReason ? `kicked: ${this.kickReason}`
      : `pomelo: connection closed${ev && ev.code ? ` (${ev.code}${ev.reason ? ` ${ev.reason}` : ''})` : ''}`;
    const code = err ? err.code : this.kickReason ? 'kick' : 'closed';
    const failure = err ?? new PomeloError(reason, code);
    for (const p of this.pending.values()) {
      if (p.timer !== null) this.timers.clearTimeout(p.timer);
      p.reject(new PomeloError(`pomelo: ${p.route}: ${reason}`, code));
    }
    this.pending.clear();
    if (this.ws) {
      const ws = this.ws;
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
      if (ws.readyState === 0 || ws.readyState === 1) {
        try { ws.close(); } catch { /* already closing */ }
      }
    }
    if (!wasOpen) {
      if (this.onConnectFail) this.onConnectFail(failure);
      return;
    }
    this.closeInfo = { code, reason, kicked: this.kickReason ?? null, wsCode: ev?.code };
    this.emit('close', this.closeInfo);
  }
}
