// Unit tests for the chat-session helpers: node --test web/
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';

import {
  errorText, kickText, isErrorResponse, validateLogin, wsURL, backoffMs, clockTime, join, ChatError, Routes,
} from '../static/chat.js';
import {
  PackageType, MessageType, encodePackage, encodeMessage, decodePackages, decodeMessage, strdecode,
} from '../static/pomelo.js';
import { FakeWebSocket } from './fakes.js';

describe('plain-words errors', () => {
  const cases = [
    [Routes.enter, { code: 500, error: true }, 'That name is taken in this room'],
    [Routes.send, { code: 500, error: true }, 'That person is no longer in the room'],
    [Routes.queryEntry, { code: 500 }, 'No chat server is available right now'],
    [Routes.send, { code: 413, error: true }, 'That message is too long'],
    [Routes.send, { code: 429, error: true }, 'You are sending too fast; wait a moment'],
    [Routes.enter, { code: 503, error: true }, 'The room is full or the server is at capacity; try again later'],
    [Routes.send, { code: 403, error: true }, 'You are not in a room any more'],
    [Routes.send, { code: 504, error: true }, 'The chat service is not responding; try again in a moment'],
    [Routes.send, { code: 999, error: true }, 'The server refused (code 999)'],
  ];
  for (const [route, res, want] of cases) {
    test(`${route} ${res.code}`, () => {
      assert.equal(errorText(route, res), want);
      assert.equal(new ChatError(route, res).message, want);
    });
  }

  test('isErrorResponse', () => {
    assert.equal(isErrorResponse({}), false);
    assert.equal(isErrorResponse({ users: [] }), false);
    assert.equal(isErrorResponse({ code: 200, host: 'h', port: 1 }), false);
    assert.equal(isErrorResponse({ code: 500 }), true);
    assert.equal(isErrorResponse({ code: 500, error: true, message: 'x' }), true);
    assert.equal(isErrorResponse(null), true);
  });
});

test('kickText', () => {
  assert.equal(kickText('server shutting down'), 'The server is restarting or shutting down');
  assert.match(kickText('slow consumer'), /fell too far behind/);
  assert.equal(kickText('kick'), 'The server closed this connection');
  assert.equal(kickText(undefined), 'The server closed this connection');
  assert.equal(kickText('maintenance'), 'The server closed this connection (maintenance)');
});

test('validateLogin', () => {
  assert.equal(validateLogin('alice', 'room1'), '');
  assert.equal(validateLogin('', 'room1'), 'Enter a name');
  assert.equal(validateLogin('alice', ''), 'Enter a room');
  assert.match(validateLogin('a*b', 'room1'), /\*/);
  assert.match(validateLogin('x'.repeat(33), 'r'), /too long/);
});

test('wsURL', () => {
  const page = { hostname: 'chat.example', protocol: 'http:' };
  assert.equal(wsURL('127.0.0.1', 3014, page), 'ws://127.0.0.1:3014/');
  assert.equal(wsURL('0.0.0.0', 3050, page), 'ws://chat.example:3050/');
  assert.equal(wsURL('', 3050, page), 'ws://chat.example:3050/');
  assert.equal(wsURL('::1', 3050, page), 'ws://[::1]:3050/');
  assert.equal(wsURL('h', 1, { hostname: 'x', protocol: 'https:' }), 'wss://h:1/');
});

test('backoffMs grows, is capped and jittered', () => {
  assert.equal(backoffMs(0, () => 1), 500);
  assert.equal(backoffMs(0, () => 0), 250);
  assert.equal(backoffMs(1, () => 1), 1000);
  assert.equal(backoffMs(3, () => 1), 4000);
  assert.equal(backoffMs(5, () => 1), 10000);
  assert.equal(backoffMs(50, () => 1), 10000);
  for (let a = 0; a < 20; a++) {
    const d = backoffMs(a);
    assert.ok(d >= 250 && d <= 10000, `attempt ${a}: ${d}`);
  }
});

test('clockTime', () => {
  assert.equal(clockTime(new Date(2026, 0, 2, 9, 5)), '09:05');
  assert.equal(clockTime(new Date(2026, 0, 2, 23, 59)), '23:59');
});

/**
 * A fake gate + connector: answers handshakes (real clients, FakeWebSocket)
 * and the chat routes with the given enter answer.
 */
function fakeServer({ enter }) {
  FakeWebSocket.instances.length = 0;
  const seen = [];
  class ServerWS extends FakeWebSocket {
    constructor(url) {
      super(url);
      queueMicrotask(() => this.serverOpen());
    }

    send(data) {
      super.send(data);
      for (const p of decodePackages(this.sent[this.sent.length - 1])) {
        if (p.type === PackageType.HANDSHAKE) {
          this.serverSend(encodePackage(PackageType.HANDSHAKE, JSON.stringify({ code: 200, sys: { heartbeat: 0, useDict: false } })));
        } else if (p.type === PackageType.DATA) {
          const m = decodeMessage(p.body);
          const body = JSON.parse(strdecode(m.body));
          seen.push([this.url, m.route, body]);
          let res = {};
          if (m.route === Routes.queryEntry) res = { code: 200, host: '127.0.0.1', port: 3051 };
          if (m.route === Routes.enter) {
            // as stock pomelo: no onAdd of the newcomer itself, but a member
            // entering right after it can be announced before its answer
            this.serverSend(encodePackage(PackageType.DATA, encodeMessage({ type: MessageType.PUSH, route: 'onAdd', body: JSON.stringify({ user: 'carol' }) })));
            res = enter;
          }
          this.serverSend(encodePackage(PackageType.DATA, encodeMessage({ type: MessageType.RESPONSE, id: m.id, body: JSON.stringify(res) })));
        }
      }
    }
  }
  return { ServerWS, seen };
}

describe('join', () => {
  const fetchConfig = async () => ({ gate: { host: '127.0.0.1', port: 3014 } });

  test('asks the gate, connects to the connector, enters; the gate socket is closed', async () => {
    const { ServerWS, seen } = fakeServer({ enter: { users: ['bob', 'alice'] } });
    const adds = [];
    const { client, users, connector } = await join('alice', 'room1', {
      fetchConfig, WebSocket: ServerWS, onClient: (c) => c.on('onAdd', (b) => adds.push(b.user)),
    });
    assert.deepEqual(users, ['bob', 'alice']);
    assert.deepEqual(connector, { host: '127.0.0.1', port: 3051 }, 'the connector the gate answered');
    assert.deepEqual(adds, ['carol'], 'listeners attached before enter answered');
    assert.deepEqual(seen, [
      ['ws://127.0.0.1:3014/', Routes.queryEntry, { uid: 'alice' }],
      ['ws://127.0.0.1:3051/', Routes.enter, { username: 'alice', rid: 'room1' }],
    ]);
    assert.equal(FakeWebSocket.instances[0].closed, true, 'gate socket closed');
    assert.equal(client.state, 'open');
    client.close();
  });

  test('a duplicate name is a ChatError in plain words, and the socket is closed', async () => {
    const { ServerWS } = fakeServer({ enter: { code: 500, error: true } });
    await assert.rejects(join('alice', 'room1', { fetchConfig, WebSocket: ServerWS }),
      (e) => e instanceof ChatError && e.message === 'That name is taken in this room');
    assert.ok(FakeWebSocket.instances.every((ws) => ws.closed));
  });

  test('a bad /config.json is reported', async () => {
    const { ServerWS } = fakeServer({ enter: {} });
    await assert.rejects(join('a', 'r', { fetchConfig: async () => ({}), WebSocket: ServerWS }), /config\.json/);
  });
});
