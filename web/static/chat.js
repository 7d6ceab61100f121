// Chat-session logic without the DOM: where the gate is, how to talk to the
// chat routes, what an error means in plain words, and how long to wait before
// reconnecting. Unit-tested with node --test (web/jstest).
import { PomeloClient, PomeloError } from './pomelo.js';

export const Routes = Object.freeze({
  queryEntry: 'gate.gateHandler.queryEntry',
  enter: 'connector.entryHandler.enter',
  send: 'chat.chatHandler.send',
});

export const EVERYONE = '*';

/** Thrown for an error answer ({code, error:true}) of a chat route. */
export class ChatError extends Error {
  constructor(route, res) {
    super(errorText(route, res));
    this.name = 'ChatError';
    this.route = route;
    this.code = res?.code;
    this.response = res;
  }
}

/** True when a route's response is an error answer. */
export function isErrorResponse(res) {
  if (!res || typeof res !== 'object') return true;
  if (res.error === true) return true;
  return typeof res.code === 'number' && res.code !== 200;
}

/** A plain-words message for an error answer of a chat route. */
export function errorText(route, res) {
  const code = res?.code;
  switch (code) {
    case 500:
      if (route === Routes.enter) return 'That name is taken in this room';
      if (route === Routes.send) return 'That person is no longer in the room';
      if (route === Routes.queryEntry) return 'No chat server is available right now';
      return 'The server could not do that';
    case 400: return 'The server did not understand that request';
    case 403: return 'You are not in a room any more';
    case 404: return 'The server does not know that action';
    case 413: return 'That message is too long';
    case 429: return 'You are sending too fast; wait a moment';
    case 503: return 'The room is full or the server is at capacity; try again later';
    case 504: return 'The chat service is not responding; try again in a moment';
    default: return `The server refused (code ${code ?? 'none'})`;
  }
}

/** A plain-words line for a KICK from the server. */
export function kickText(reason) {
  switch (reason) {
    case 'server shutting down': return 'The server is restarting or shutting down';
    case 'slow consumer': return 'The server dropped this connection because it fell too far behind';
    case 'kick': case '': case undefined: case null: return 'The server closed this connection';
    default: return `The server closed this connection (${reason})`;
  }
}

/** Checks a login form's name and room; returns an error text or ''. */
export function validateLogin(name, room) {
  if (!name) return 'Enter a name';
  if (!room) return 'Enter a room';
  if (name.includes('*') || room.includes('*')) return 'Names and rooms cannot contain *';
  if (name.length > 32) return 'That name is too long (32 characters at most)';
  if (room.length > 32) return 'That room name is too long (32 characters at most)';
  return '';
}

/**
 * The websocket URL of a host/port the server announced. A host the browser
 * cannot dial (empty, 0.0.0.0, ::) is replaced by the page's own host.
 */
export function wsURL(host, port, pageLocation) {
  let h = host;
  if (!h || h === '0.0.0.0' || h === '::' || h === '[::]') h = pageLocation?.hostname || '127.0.0.1';
  if (h.includes(':') && !h.startsWith('[')) h = `[${h}]`;
  const scheme = pageLocation?.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${h}:${port}/`;
}

/**
 * Reconnect delay for the given attempt (0-based): exponential from 500 ms,
 * capped at 10 s, with full jitter in [50%, 100%] so a restarted server is
 * not hit by every page at once. rand is Math.random by default.
 */
export function backoffMs(attempt, rand = Math.random) {
  const base = Math.min(10000, 500 * 2 ** Math.min(attempt, 10));
  return Math.round(base * (0.5 + 0.5 * rand()));
}

/** "14:05" for a Date, in the browser's time zone. */
export function clockTime(d) {
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

/**
 * Joins a room: asks the gate for a connector, connects there and enters.
 * Resolves with {client, users, connector}; the caller owns the client;
 * connector is the {host, port} the gate answered and the client connected to.
 * Rejects with a
 * ChatError for an error answer, or a PomeloError when a connection fails.
 * deps: {fetchConfig: () => Promise<{gate:{host,port}}>, location, WebSocket}.
 */
export async function join(name, room, deps) {
  const cfg = await deps.fetchConfig();
  if (!cfg?.gate?.port) throw new PomeloError('The page could not find the chat server (bad /config.json)', 'config');
  const opts = deps.WebSocket ? { WebSocket: deps.WebSocket } : {};
  const gate = new PomeloClient(opts);
  let entry;
  try {
    await gate.connect(wsURL(cfg.gate.host, cfg.gate.port, deps.location));
    entry = await gate.request(Routes.queryEntry, { uid: name });
  } finally {
    gate.close();
  }
  if (isErrorResponse(entry)) throw new ChatError(Routes.queryEntry, entry);
  const client = new PomeloClient(opts);
  await client.connect(wsURL(entry.host, entry.port, deps.location));
  // Listeners must be attached by the caller before enter answers: a member
  // who enters right after us is announced (onAdd) before our answer may
  // arrive. We get no onAdd of ourselves (stock pomelo): the answer's users
  // list the room, us included. Hand the client out early.
  deps.onClient?.(client);
  let res;
  try {
    res = await client.request(Routes.enter, { username: name, rid: room });
  } catch (e) {
    client.close();
    throw e;
  }
  if (isErrorResponse(res)) {
    client.close();
    throw new ChatError(Routes.enter, res);
  }
  return {
    client,
    users: Array.isArray(res.users) ? res.users : [],
    connector: { host: String(entry.host), port: Number(entry.port) },
  };
}
