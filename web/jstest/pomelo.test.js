// Unit tests for the pomelo protocol client: node --test web/
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';

import {
  PackageType, MessageType, encodePackage, decodePackages, encodeMessage, decodeMessage,
  encodeId, decodeProtobuf, PomeloClient, CLIENT_HANDSHAKE, strdecode,
} from '../static/pomelo.js';
import { FakeTimers, FakeWebSocket, bytes, hex } from './fakes.js';

const ROUTES = {
  'chat.chatHandler.send': 1,
  'connector.entryHandler.enter': 2,
  'gate.gateHandler.queryEntry': 3,
};

function handshakeResponse(sys = {}) {
  return encodePackage(PackageType.HANDSHAKE, JSON.stringify({
    code: 200,
    sys: { heartbeat: 3, dict: ROUTES, useDict: true, useProto: false, ...sys },
  }));
}

function dataPackage(msg) {
  return encodePackage(PackageType.DATA, encodeMessage(msg));
}

function response(id, body) {
  return dataPackage({ type: MessageType.RESPONSE, id, body: JSON.stringify(body) });
}

function push(route, body) {
  return dataPackage({ type: MessageType.PUSH, route, body: JSON.stringify(body) });
}

/** A client connected to a fake server, handshake done. */
async function connected(sys, opts = {}) {
  const timers = new FakeTimers();
  const c = new PomeloClient({ WebSocket: FakeWebSocket, timers, ...opts });
  const p = c.connect('ws://127.0.0.1:3014/');
  const ws = FakeWebSocket.last();
  ws.serverOpen();
  ws.serverSend(handshakeResponse(sys));
  const got = await p;
  ws.sent.length = 0; // drop handshake + ack, checked elsewhere
  return { c, ws, timers, sys: got };
}

/** The message inside the only DATA package of a sent frame. */
function sentMessage(frame) {
  const pkgs = decodePackages(frame);
  assert.equal(pkgs.length, 1);
  assert.equal(pkgs[0].type, PackageType.DATA);
  return decodeMessage(pkgs[0].body);
}

describe('package layer', () => {
  test('heartbeat and handshake ack are exactly 4 bytes', () => {
    assert.equal(hex(encodePackage(PackageType.HEARTBEAT)), '03 00 00 00');
    assert.equal(hex(encodePackage(PackageType.HANDSHAKE_ACK)), '02 00 00 00');
  });

  test('body length is 3 bytes big-endian', () => {
    const body = new Uint8Array(0x012345);
    const p = encodePackage(PackageType.DATA, body);
    assert.equal(hex(p.subarray(0, 4)), '04 01 23 45');
    assert.equal(p.length, 4 + 0x012345);
    const [d] = decodePackages(p);
    assert.equal(d.body.length, 0x012345);
  });

  test('a body over 2^24-1 bytes is refused', () => {
    assert.throws(() => encodePackage(PackageType.DATA, new Uint8Array(1 << 24)), RangeError);
  });

  test('several packages in one frame', () => {
    const frame = bytes(
      encodePackage(PackageType.HEARTBEAT),
      encodePackage(PackageType.DATA, 'ab'),
      encodePackage(PackageType.KICK, '{"reason":"kick"}'),
    );
    const pkgs = decodePackages(frame);
    assert.deepEqual(pkgs.map((p) => p.type), [3, 4, 5]);
    assert.equal(strdecode(pkgs[1].body), 'ab');
    assert.equal(strdecode(pkgs[2].body), '{"reason":"kick"}');
  });

  const bad = [
    ['truncated header', [4, 0, 0]],
    ['truncated body', [4, 0, 0, 5, 1, 2]],
    ['unknown type 0', [0, 0, 0, 0]],
    ['unknown type 6', [6, 0, 0, 0]],
    ['good then truncated', [3, 0, 0, 0, 4, 0]],
  ];
  for (const [name, input] of bad) {
    test(`decodePackages rejects: ${name}`, () => {
      assert.throws(() => decodePackages(Uint8Array.from(input)), Error);
    });
  }

  test('decodes from an ArrayBuffer and from a view with an offset', () => {
    const frame = bytes([9, 9], encodePackage(PackageType.DATA, 'x'));
    const [p] = decodePackages(frame.subarray(2));
    assert.equal(strdecode(p.body), 'x');
    const [q] = decodePackages(frame.slice(2).buffer);
    assert.equal(strdecode(q.body), 'x');
  });
});

describe('message layer', () => {
  test('golden: request with a string route (shared doc)', () => {
    const want = bytes([0x04, 0x00, 0x00, 0x2d, 0x00, 0x01, 0x1b], 'gate.gateHandler.queryEntry', '{"uid":"alice"}');
    const got = dataPackage({
      type: MessageType.REQUEST, id: 1, route: 'gate.gateHandler.queryEntry', body: '{"uid":"alice"}',
    });
    assert.equal(hex(got), hex(want));
    const m = decodeMessage(decodePackages(want)[0].body);
    assert.equal(m.type, MessageType.REQUEST);
    assert.equal(m.id, 1);
    assert.equal(m.route, 'gate.gateHandler.queryEntry');
    assert.equal(strdecode(m.body), '{"uid":"alice"}');
  });

  test('golden: request with compressed route 2 (shared doc)', () => {
    const want = bytes([0x04, 0x00, 0x00, 0x26, 0x01, 0x01, 0x00, 0x02], '{"username":"alice","rid":"room1"}');
    const got = dataPackage({
      type: MessageType.REQUEST, id: 1, route: 'connector.entryHandler.enter', routeCode: 2,
      body: '{"username":"alice","rid":"room1"}',
    });
    assert.equal(hex(got), hex(want));
    const m = decodeMessage(decodePackages(want)[0].body);
    assert.equal(m.compressed, true);
    assert.equal(m.routeCode, 2);
    assert.equal(m.route, undefined);
  });

  test('golden: push onChat with a protobuf body (shared doc)', () => {
    const msg = bytes([0x06, 0x06], 'onChat', [0x0a, 0x09], 'hello all', [0x12, 0x05], 'alice', [0x1a, 0x01], '*');
    const m = decodeMessage(msg);
    assert.equal(m.type, MessageType.PUSH);
    assert.equal(m.route, 'onChat');
    const schema = { 'required string msg': 1, 'required string from': 2, 'required string target': 3 };
    assert.deepEqual(decodeProtobuf(m.body, schema), { msg: 'hello all', from: 'alice', target: '*' });
  });

  const ids = [
    [0, '00'], [1, '01'], [127, '7f'], [128, '80 01'], [129, '81 01'], [300, 'ac 02'],
    [16383, 'ff 7f'], [16384, '80 80 01'], [0xffffffff, 'ff ff ff ff 0f'],
  ];
  for (const [id, want] of ids) {
    test(`message id ${id} encodes as ${want} and round-trips`, () => {
      assert.equal(hex(encodeId(id)), want);
      const enc = encodeMessage({ type: MessageType.RESPONSE, id, body: '{}' });
      assert.equal(hex(enc), `04 ${want} 7b 7d`);
      const m = decodeMessage(enc);
      assert.equal(m.type, MessageType.RESPONSE);
      assert.equal(m.id, id);
      assert.equal(strdecode(m.body), '{}');
    });
  }

  test('flag bytes per type', () => {
    const cases = [
      [{ type: MessageType.REQUEST, id: 1, route: 'a' }, 0x00],
      [{ type: MessageType.REQUEST, id: 1, routeCode: 1 }, 0x01],
      [{ type: MessageType.NOTIFY, route: 'a' }, 0x02],
      [{ type: MessageType.NOTIFY, routeCode: 1 }, 0x03],
      [{ type: MessageType.RESPONSE, id: 1 }, 0x04],
      [{ type: MessageType.PUSH, route: 'onChat' }, 0x06],
      [{ type: MessageType.PUSH, routeCode: 7 }, 0x07],
    ];
    for (const [msg, flag] of cases) {
      const enc = encodeMessage(msg);
      assert.equal(enc[0], flag, JSON.stringify(msg));
      const dec = decodeMessage(enc);
      assert.equal(dec.type, msg.type);
    }
  });

  test('notify has no id; push route is UTF-8 with a length byte', () => {
    assert.equal(hex(encodeMessage({ type: MessageType.NOTIFY, route: 'x.y', body: '1' })), '02 03 78 2e 79 31');
    const m = decodeMessage(encodeMessage({ type: MessageType.PUSH, route: 'héllo', body: '{}' }));
    assert.equal(m.route, 'héllo');
  });

  test('a route over 255 bytes is refused', () => {
    assert.throws(() => encodeMessage({ type: MessageType.NOTIFY, route: 'r'.repeat(256) }), RangeError);
    encodeMessage({ type: MessageType.NOTIFY, route: 'r'.repeat(255) });
  });

  const badMessages = [
    ['empty', []],
    ['reserved flag bits', [0x20, 0x01]],
    ['message type 4', [0x08, 0x01]],
    ['truncated id', [0x04, 0x80]],
    ['id over 5 bytes', [0x04, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]],
    ['id over 32 bits', [0x04, 0xff, 0xff, 0xff, 0xff, 0x1f]],
    ['truncated compressed route', [0x07, 0x00]],
    ['truncated string route', [0x06, 0x05, 0x61]],
    ['missing route length', [0x06]],
    ['compressed flag on response', [0x05, 0x01]],
  ];
  for (const [name, input] of badMessages) {
    test(`decodeMessage rejects: ${name}`, () => {
      assert.throws(() => decodeMessage(Uint8Array.from(input)), Error);
    });
  }
});

describe('protobuf bodies', () => {
  test('varints, zigzag, doubles, nested and repeated fields; unknown fields skipped', () => {
    const schema = {
      'required uInt32 n': 1,
      'optional sInt32 z': 2,
      'optional double d': 3,
      'repeated string tags': 4,
      'optional Sub sub': 5,
      'message Sub': { 'required string name': 1 },
    };
    const d = new Uint8Array(8);
    new DataView(d.buffer).setFloat64(0, 1.5, true);
    const body = bytes(
      [0x08, 0xac, 0x02], // n = 300
      [0x10, 0x03], // z = zigzag 3 -> -2
      [0x19], d, // d = 1.5
      [0x22, 0x01], 'a', [0x22, 0x01], 'b',
      [0x2a, 0x04, 0x0a, 0x02], 'hi',
      [0x78, 0x05], // tag 15 varint: unknown, skipped
    );
    assert.deepEqual(decodeProtobuf(body, schema), { n: 300, z: -2, d: 1.5, tags: ['a', 'b'], sub: { name: 'hi' } });
  });

  test('the parsed schemas a pomelo 2.2.7 handshake carries (stock onChat, a nested message)', () => {
    // sys.protos.server.onChat exactly as a stock pomelo 2.2.7 chat connector sends it
    const onChat = {
      msg: { option: 'required', type: 'string', tag: 1 },
      from: { option: 'required', type: 'string', tag: 2 },
      target: { option: 'required', type: 'string', tag: 3 },
      __messages: {}, __tags: { 1: 'msg', 2: 'from', 3: 'target' },
    };
    const body = bytes([0x0a, 0x09], 'hello all', [0x12, 0x05], 'alice', [0x1a, 0x01], '*');
    assert.deepEqual(decodeProtobuf(body, onChat), { msg: 'hello all', from: 'alice', target: '*' });
    const withSub = {
      n: { option: 'required', type: 'uInt32', tag: 1 },
      sub: { option: 'optional', type: 'Sub', tag: 2 },
      __messages: { Sub: { name: { option: 'required', type: 'string', tag: 1 }, __messages: {}, __tags: { 1: 'name' } } },
      __tags: { 1: 'n', 2: 'sub' },
    };
    assert.deepEqual(decodeProtobuf(bytes([0x08, 0x07, 0x12, 0x04, 0x0a, 0x02], 'hi'), withSub), { n: 7, sub: { name: 'hi' } });
  });

  test('truncated string is an error', () => {
    assert.throws(() => decodeProtobuf(Uint8Array.from([0x0a, 0x05, 0x61]), { 'required string s': 1 }));
  });
});

describe('client', () => {
  test('handshake: sends the stock client body, then an ack once the server answers', async () => {
    const timers = new FakeTimers();
    const c = new PomeloClient({ WebSocket: FakeWebSocket, timers });
    const p = c.connect('ws://127.0.0.1:3014/');
    const ws = FakeWebSocket.last();
    assert.equal(ws.url, 'ws://127.0.0.1:3014/');
    ws.serverOpen();
    assert.equal(ws.binaryType, 'arraybuffer');
    assert.equal(ws.sent.length, 1);
    const [hs] = decodePackages(ws.sent[0]);
    assert.equal(hs.type, PackageType.HANDSHAKE);
    assert.deepEqual(JSON.parse(strdecode(hs.body)), CLIENT_HANDSHAKE);
    ws.serverSend(handshakeResponse());
    const sys = await p;
    assert.equal(sys.heartbeat, 3);
    assert.equal(hex(ws.sent[1]), '02 00 00 00');
    assert.equal(c.state, 'open');
    c.close();
    assert.equal(timers.pendingCount(), 0, 'close clears every timer');
  });

  for (const code of [500, 501]) {
    test(`handshake refused with code ${code} rejects connect and closes`, async () => {
      const c = new PomeloClient({ WebSocket: FakeWebSocket, timers: new FakeTimers() });
      const p = c.connect('ws://x/');
      const ws = FakeWebSocket.last();
      ws.serverOpen();
      ws.serverSend(encodePackage(PackageType.HANDSHAKE, JSON.stringify({ code })));
      await assert.rejects(p, (e) => e.code === code);
      assert.equal(ws.closed, true);
    });
  }

  test('connect rejects when the socket closes before the handshake', async () => {
    const c = new PomeloClient({ WebSocket: FakeWebSocket, timers: new FakeTimers() });
    const p = c.connect('ws://x/');
    FakeWebSocket.last().serverClose(1006);
    await assert.rejects(p, /connection closed \(1006\)/);
  });

  test('connect rejects after the handshake timeout', async () => {
    const timers = new FakeTimers();
    const c = new PomeloClient({ WebSocket: FakeWebSocket, timers, handshakeTimeoutMs: 1000 });
    const p = c.connect('ws://x/');
    FakeWebSocket.last().serverOpen();
    timers.advance(1000);
    await assert.rejects(p, /handshake timed out/);
    assert.equal(FakeWebSocket.last().closed, true);
  });

  test('requests use the dictionary code; unknown routes go as strings', async () => {
    const { c, ws } = await connected();
    const r1 = c.request('gate.gateHandler.queryEntry', { uid: 'alice' });
    const m1 = sentMessage(ws.sent[0]);
    assert.equal(m1.type, MessageType.REQUEST);
    assert.equal(m1.id, 1);
    assert.equal(m1.compressed, true);
    assert.equal(m1.routeCode, 3);
    assert.deepEqual(JSON.parse(strdecode(m1.body)), { uid: 'alice' });

    const r2 = c.request('no.such.route', {});
    const m2 = sentMessage(ws.sent[1]);
    assert.equal(m2.id, 2);
    assert.equal(m2.compressed, false);
    assert.equal(m2.route, 'no.such.route');

    // Answer out of order: responses are matched by id.
    ws.serverSend(response(2, { code: 404, error: true }));
    ws.serverSend(response(1, { code: 200, host: '127.0.0.1', port: 3050 }));
    assert.deepEqual(await r1, { code: 200, host: '127.0.0.1', port: 3050 });
    assert.deepEqual(await r2, { code: 404, error: true });
    c.close();
  });

  test('the first request of a client matches the golden compressed-route bytes', async () => {
    const { c, ws } = await connected();
    const r = c.request('connector.entryHandler.enter', { username: 'alice', rid: 'room1' });
    r.catch(() => {});
    assert.equal(hex(ws.sent[0]), hex(bytes([0x04, 0x00, 0x00, 0x26, 0x01, 0x01, 0x00, 0x02], '{"username":"alice","rid":"room1"}')));
    c.close();
  });

  test('without a dictionary the first request matches the golden string-route bytes', async () => {
    const { c, ws } = await connected({ dict: undefined, useDict: false });
    const r = c.request('gate.gateHandler.queryEntry', { uid: 'alice' });
    r.catch(() => {});
    assert.equal(hex(ws.sent[0]), hex(bytes([0x04, 0x00, 0x00, 0x2d, 0x00, 0x01, 0x1b], 'gate.gateHandler.queryEntry', '{"uid":"alice"}')));
    c.close();
  });

  test('request id 128 goes out as 80 01 and its response resolves it', async () => {
    const { c, ws } = await connected();
    const promises = [];
    for (let i = 1; i <= 129; i++) promises.push(c.request('chat.chatHandler.send', { content: String(i) }));
    const m128 = sentMessage(ws.sent[127]);
    assert.equal(m128.id, 128);
    assert.equal(hex(ws.sent[127].subarray(4, 7)), '01 80 01');
    assert.equal(JSON.parse(strdecode(m128.body)).content, '128');
    ws.serverSend(response(128, { n: 128 }));
    assert.deepEqual(await promises[127], { n: 128 });
    assert.equal(sentMessage(ws.sent[128]).id, 129);
    c.close();
    await Promise.allSettled(promises);
  });

  test('pushes with string and compressed routes reach their listeners', async () => {
    const { c, ws } = await connected({ dict: { ...ROUTES, onKnown: 9 } });
    const got = [];
    c.on('onAdd', (b) => got.push(['onAdd', b]));
    c.on('onChat', (b) => got.push(['onChat', b]));
    c.on('onKnown', (b) => got.push(['onKnown', b]));
    ws.serverSend(push('onAdd', { route: 'onAdd', user: 'bob' }));
    ws.serverSend(dataPackage({ type: MessageType.PUSH, routeCode: 9, body: '{"x":1}' }));
    ws.serverSend(push('onChat', { msg: 'hi', from: 'bob', target: '*' }));
    assert.deepEqual(got, [
      ['onAdd', { route: 'onAdd', user: 'bob' }],
      ['onKnown', { x: 1 }],
      ['onChat', { msg: 'hi', from: 'bob', target: '*' }],
    ]);
    c.close();
  });

  test('protobuf push bodies when the server announces protos (as pomelo 2.2.7 sends them)', async () => {
    const protos = {
      server: {
        onChat: {
          msg: { option: 'required', type: 'string', tag: 1 },
          from: { option: 'required', type: 'string', tag: 2 },
          target: { option: 'required', type: 'string', tag: 3 },
          __messages: {}, __tags: { 1: 'msg', 2: 'from', 3: 'target' },
        },
      },
      client: {},
      version: '2zWPnSlRsRxjqgcU215Uxg==',
    };
    const { c, ws } = await connected({ useProto: true, protos });
    let got = null;
    c.on('onChat', (b) => { got = b; });
    ws.serverSend(encodePackage(PackageType.DATA,
      bytes([0x06, 0x06], 'onChat', [0x0a, 0x09], 'hello all', [0x12, 0x05], 'alice', [0x1a, 0x01], '*')));
    assert.deepEqual(got, { msg: 'hello all', from: 'alice', target: '*' });
    c.close();
  });

  test('several packages in one server frame are all handled, in order', async () => {
    const { c, ws } = await connected();
    const order = [];
    c.on('onAdd', (b) => order.push(`add ${b.user}`));
    c.on('onLeave', (b) => order.push(`leave ${b.user}`));
    const r = c.request('connector.entryHandler.enter', { username: 'alice', rid: 'r' });
    r.then(() => order.push('response'));
    ws.serverSend(bytes(
      push('onAdd', { user: 'alice' }),
      encodePackage(PackageType.HEARTBEAT),
      response(1, { users: ['alice'] }),
      push('onLeave', { user: 'bob' }),
    ));
    assert.deepEqual(await r, { users: ['alice'] });
    assert.deepEqual(order, ['add alice', 'leave bob', 'response']);
    c.close();
  });

  test('heartbeats go out every interval while the server answers', async () => {
    const { c, ws, timers } = await connected({ heartbeat: 3 });
    for (let i = 1; i <= 4; i++) {
      timers.advance(3000);
      assert.equal(ws.sent.length, i);
      assert.equal(hex(ws.sent[i - 1]), '03 00 00 00');
      ws.serverSend(encodePackage(PackageType.HEARTBEAT)); // echo
    }
    assert.equal(c.state, 'open');
    c.close();
  });

  test('silence for 2 x heartbeat closes the client with a heartbeat timeout', async () => {
    const { c, ws, timers } = await connected({ heartbeat: 3 });
    const closes = [];
    c.on('close', (info) => closes.push(info));
    const pending = c.request('chat.chatHandler.send', {});
    timers.advance(6000);
    assert.equal(c.state, 'open', 'exactly 2 x heartbeat is still alive');
    timers.advance(1000);
    assert.equal(c.state, 'closed');
    assert.equal(closes.length, 1);
    assert.equal(closes[0].code, 'heartbeat');
    assert.equal(ws.closed, true);
    await assert.rejects(pending, /heartbeat timeout/);
    assert.equal(timers.pendingCount(), 0);
  });

  test('heartbeat 0 means no heartbeats and no timeout', async () => {
    const { c, ws, timers } = await connected({ heartbeat: 0 });
    timers.advance(60000);
    assert.equal(ws.sent.length, 0);
    assert.equal(c.state, 'open');
    c.close();
  });

  test('kick: event with the reason, then close reports it', async () => {
    const { c, ws } = await connected();
    const events = [];
    c.on('kick', (k) => events.push(['kick', k.reason]));
    c.on('close', (info) => events.push(['close', info.code, info.kicked]));
    ws.serverSend(encodePackage(PackageType.KICK, '{"reason":"slow consumer"}'));
    ws.serverClose(1000);
    assert.deepEqual(events, [['kick', 'slow consumer'], ['close', 'kick', 'slow consumer']]);
  });

  test('server close rejects pending requests and emits close once', async () => {
    const { c, ws } = await connected();
    let closes = 0;
    c.on('close', () => closes++);
    const r = c.request('chat.chatHandler.send', {});
    ws.serverClose(1006);
    await assert.rejects(r, (e) => e.code === 'closed');
    c.close();
    assert.equal(closes, 1);
    await assert.rejects(c.request('chat.chatHandler.send', {}), /not connected/);
    assert.throws(() => c.notify('chat.chatHandler.send', {}), /not connected/);
  });

  test('request timeout rejects and a late response is ignored', async () => {
    const { c, ws, timers } = await connected({ heartbeat: 0 }, { requestTimeoutMs: 500 });
    const r = c.request('chat.chatHandler.send', {});
    timers.advance(500);
    await assert.rejects(r, /timed out/);
    ws.serverSend(response(1, {}));
    assert.equal(c.state, 'open');
    c.close();
  });

  test('notify: flag 0x03 with the dictionary code, no id', async () => {
    const { c, ws } = await connected();
    c.notify('chat.chatHandler.send', { a: 1 });
    assert.equal(hex(ws.sent[0]), hex(bytes([0x04, 0x00, 0x00, 0x0a, 0x03, 0x00, 0x01], '{"a":1}')));
    c.close();
  });

  test('DATA before the handshake is ignored', async () => {
    const timers = new FakeTimers();
    const c = new PomeloClient({ WebSocket: FakeWebSocket, timers });
    const p = c.connect('ws://x/');
    const ws = FakeWebSocket.last();
    ws.serverOpen();
    let pushes = 0;
    c.on('onChat', () => pushes++);
    ws.serverSend(push('onChat', { msg: 'early' }));
    ws.serverSend(handshakeResponse());
    await p;
    assert.equal(pushes, 0);
    c.close();
  });

  test('a malformed frame is a protocol error: error event, then close', async () => {
    const { c, ws } = await connected();
    const events = [];
    c.on('error', (e) => events.push(['error', e.message]));
    c.on('close', (info) => events.push(['close', info.code]));
    ws.serverSend([9, 0, 0, 0]);
    assert.equal(events.length, 2);
    assert.match(events[0][1], /unknown package type 9/);
    assert.deepEqual(events[1], ['close', 'protocol']);
    assert.equal(ws.closed, true);
  });

  test('a listener that throws does not break dispatch', async () => {
    const { c, ws } = await connected();
    const origError = console.error;
    console.error = () => {};
    try {
      let second = 0;
      c.on('onAdd', () => { throw new Error('boom'); });
      c.on('onAdd', () => second++);
      ws.serverSend(push('onAdd', { user: 'x' }));
      assert.equal(second, 1);
      assert.equal(c.state, 'open');
    } finally {
      console.error = origError;
    }
    c.close();
  });
});
