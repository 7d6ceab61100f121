// The chat page: login, member list, messages, composer, reconnect.
// Every piece of text from the network goes into the DOM with textContent or
// setAttribute, never as HTML.
import {
  join, ChatError, Routes, EVERYONE, isErrorResponse, errorText, kickText, validateLogin, backoffMs, clockTime,
} from './chat.js';

const $ = (id) => document.getElementById(id);

const ui = {
  login: $('login'),
  loginForm: $('login-form'),
  name: $('name'),
  room: $('room'),
  joinBtn: $('join'),
  loginError: $('login-error'),
  chat: $('chat'),
  roomName: $('room-name'),
  status: $('status'),
  statusText: $('status-text'),
  leave: $('leave'),
  members: $('members'),
  memberCount: $('member-count'),
  banner: $('banner'),
  bannerDetail: $('banner-detail'),
  messages: $('messages'),
  empty: $('empty'),
  composer: $('composer'),
  target: $('target'),
  text: $('text'),
  send: $('send'),
  composerNote: $('composer-note'),
};

const state = {
  me: '',
  room: '',
  client: null,
  members: new Set(),
  gen: 0, // bumps on every join/leave so stale clients' events are ignored
  attempt: 0,
  dupes: 0,
  timer: null,
  joins: 0, // join attempts, for tests
  entered: 0, // successful joins, for tests
  connector: '', // host:port of the connector of the last successful join, for tests
};

// Phases: login, joining, online, reconnecting. CSS and tests read body[data-phase].
function setPhase(phase) {
  document.body.dataset.phase = phase;
  const online = phase === 'online';
  ui.login.hidden = phase === 'online' || phase === 'reconnecting';
  ui.chat.hidden = !ui.login.hidden;
  ui.leave.hidden = ui.chat.hidden;
  ui.banner.hidden = phase !== 'reconnecting';
  ui.text.disabled = !online;
  ui.send.disabled = !online;
  ui.target.disabled = !online;
  ui.joinBtn.disabled = phase === 'joining';
  ui.name.disabled = phase === 'joining';
  ui.room.disabled = phase === 'joining';
  ui.status.dataset.state = phase;
  ui.statusText.textContent = {
    login: 'Not connected',
    joining: 'Connecting…',
    online: `Online as ${state.me}`,
    reconnecting: 'Reconnecting…',
  }[phase];
  ui.joinBtn.textContent = phase === 'joining' ? 'Joining…' : 'Join room';
}

async function fetchConfig() {
  const res = await fetch('/config.json', { cache: 'no-store' });
  if (!res.ok) throw new Error(`/config.json: HTTP ${res.status}`);
  return res.json();
}

// ---- members -------------------------------------------------------------

function hue(name) {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

function avatar(name) {
  const a = document.createElement('span');
  a.className = 'avatar';
  a.textContent = [...name][0]?.toUpperCase() ?? '?';
  a.style.setProperty('--h', String(hue(name)));
  a.setAttribute('aria-hidden', 'true');
  return a;
}

function renderMembers() {
  const names = [...state.members].sort((a, b) => {
    if (a === state.me) return -1;
    if (b === state.me) return 1;
    return a.localeCompare(b);
  });
  ui.members.replaceChildren(...names.map((name) => {
    const li = document.createElement('li');
    li.dataset.name = name;
    li.append(avatar(name));
    const label = document.createElement('span');
    label.className = 'member-name';
    label.textContent = name;
    li.append(label);
    if (name === state.me) {
      li.classList.add('me');
      const you = document.createElement('span');
      you.className = 'tag';
      you.textContent = 'you';
      li.append(you);
    } else {
      li.tabIndex = 0;
      li.title = `Send a private message to ${name}`;
      li.setAttribute('role', 'button');
      if (ui.target.value === name) li.classList.add('selected');
    }
    return li;
  }));
  ui.memberCount.textContent = String(names.length);

  // Rebuild the target picker: Everyone + the others, keeping the choice.
  const chosen = ui.target.value;
  const opts = [new Option('Everyone', EVERYONE)];
  for (const name of names) {
    if (name !== state.me) opts.push(new Option(`${name} (private)`, name));
  }
  ui.target.replaceChildren(...opts);
  ui.target.value = state.members.has(chosen) && chosen !== state.me ? chosen : EVERYONE;
  ui.composer.dataset.private = String(ui.target.value !== EVERYONE);
}

function pickTarget(name) {
  ui.target.value = state.members.has(name) && name !== state.me ? name : EVERYONE;
  renderMembers();
  ui.text.focus();
}

ui.members.addEventListener('click', (ev) => {
  const li = ev.target.closest('li[data-name]');
  if (!li || li.dataset.name === state.me) return;
  pickTarget(ui.target.value === li.dataset.name ? EVERYONE : li.dataset.name);
});
ui.members.addEventListener('keydown', (ev) => {
  if (ev.key !== 'Enter' && ev.key !== ' ') return;
  const li = ev.target.closest('li[data-name]');
  if (!li) return;
  ev.preventDefault();
  li.click();
});
ui.target.addEventListener('change', () => renderMembers());

// ---- messages ------------------------------------------------------------

function nearBottom() {
  const m = ui.messages;
  return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
}

function append(li) {
  const stick = nearBottom();
  ui.messages.append(li);
  ui.empty.hidden = true;
  if (stick) ui.messages.scrollTop = ui.messages.scrollHeight;
}

function systemLine(text, kind = 'info') {
  const li = document.createElement('li');
  li.className = `system ${kind}`;
  const span = document.createElement('span');
  span.textContent = text;
  li.append(span);
  const t = document.createElement('time');
  const now = new Date();
  t.dateTime = now.toISOString();
  t.textContent = clockTime(now);
  li.append(t);
  append(li);
}

function chatLine({ from, target, msg }) {
  const now = new Date();
  const priv = target !== EVERYONE;
  const mine = from === state.me;
  const li = document.createElement('li');
  li.className = 'msg';
  if (mine) li.classList.add('mine');
  if (priv) li.classList.add('private');
  li.dataset.from = from;
  li.dataset.target = target;

  li.append(avatar(from));
  const bubble = document.createElement('div');
  bubble.className = 'bubble';
  const meta = document.createElement('div');
  meta.className = 'meta';
  const who = document.createElement('span');
  who.className = 'from';
  who.textContent = mine ? 'You' : from;
  meta.append(who);
  if (priv) {
    const to = document.createElement('span');
    to.className = 'to';
    to.textContent = `→ ${target === state.me ? 'you' : target}`;
    meta.append(to);
    const badge = document.createElement('span');
    badge.className = 'badge';
    badge.textContent = 'private';
    meta.append(badge);
  }
  const t = document.createElement('time');
  t.dateTime = now.toISOString();
  t.title = now.toLocaleString();
  t.textContent = clockTime(now);
  meta.append(t);
  const text = document.createElement('div');
  text.className = 'text';
  text.textContent = String(msg ?? '');
  bubble.append(meta, text);
  li.append(bubble);
  append(li);
}

// ---- connection ----------------------------------------------------------

function attach(client, gen) {
  const live = () => gen === state.gen;
  client.on('onAdd', ({ user }) => {
    if (!live() || typeof user !== 'string') return;
    if (state.members.has(user)) return;
    state.members.add(user);
    renderMembers();
    if (user !== state.me) systemLine(`${user} joined`, 'join');
  });
  client.on('onLeave', ({ user }) => {
    if (!live() || !state.members.delete(user)) return;
    const wasTarget = ui.target.value === user;
    renderMembers();
    systemLine(`${user} left`, 'leave');
    if (wasTarget) note(`${user} left; now sending to everyone`);
  });
  client.on('onChat', (m) => {
    if (live()) chatLine({ from: String(m.from ?? '?'), target: String(m.target ?? EVERYONE), msg: m.msg });
  });
  client.on('kick', ({ reason }) => {
    if (live()) systemLine(kickText(reason), 'error');
  });
  client.on('close', () => {
    // Only the entered session's loss means reconnect; a client that closes
    // before enter answered is reported by join() itself.
    if (!live() || state.client !== client) return;
    state.client = null;
    startReconnect();
  });
}

function enterRoom(client, users, connector, gen) {
  state.entered++;
  state.connector = `${connector.host}:${connector.port}`;
  state.client = client;
  state.members = new Set(users);
  state.members.add(state.me);
  state.attempt = 0;
  state.dupes = 0;
  ui.roomName.textContent = state.room;
  document.title = `${state.room} · chatbench`;
  setPhase('online');
  renderMembers();
  void gen;
}

async function connect() {
  const gen = ++state.gen;
  state.joins++;
  const { client, users, connector } = await join(state.me, state.room, {
    fetchConfig,
    location: window.location,
    onClient: (c) => attach(c, gen),
  });
  if (gen !== state.gen) { // left meanwhile
    client.close();
    throw new Error('cancelled');
  }
  enterRoom(client, users, connector, gen);
}

function plainError(e) {
  if (e instanceof ChatError) return e.message;
  if (e?.code === 'config') return e.message;
  return 'Cannot reach the chat server. Is it running?';
}

ui.loginForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const name = ui.name.value.trim();
  const room = ui.room.value.trim();
  const bad = validateLogin(name, room);
  ui.loginError.textContent = bad;
  if (bad) return;
  state.me = name;
  state.room = room;
  setPhase('joining');
  try {
    await connect();
    try {
      localStorage.setItem('chatbench.name', name);
      localStorage.setItem('chatbench.room', room);
    } catch { /* storage may be off */ }
    ui.messages.replaceChildren();
    ui.empty.hidden = false;
    systemLine(`You joined ${room}`, 'join');
    ui.text.focus();
  } catch (e) {
    if (e?.message === 'cancelled') return;
    setPhase('login');
    ui.loginError.textContent = plainError(e);
    (e instanceof ChatError && e.route === Routes.enter ? ui.name : ui.joinBtn).focus();
  }
});

function startReconnect() {
  if (document.body.dataset.phase !== 'reconnecting') {
    setPhase('reconnecting');
    systemLine('Connection lost, reconnecting...', 'error');
  }
  scheduleAttempt();
}

function scheduleAttempt() {
  clearTimeout(state.timer);
  const delay = backoffMs(state.attempt);
  const secs = Math.max(1, Math.round(delay / 1000));
  ui.bannerDetail.textContent = state.attempt === 0
    ? ''
    : `Attempt ${state.attempt + 1}, next try in ${secs} s`;
  state.timer = setTimeout(tryReconnect, delay);
}

async function tryReconnect() {
  state.timer = null;
  try {
    await connect();
    systemLine('Reconnected', 'join');
    ui.text.focus();
  } catch (e) {
    if (e?.message === 'cancelled') return;
    state.attempt++;
    // A duplicate right after a restart can be our own old session that the
    // server has not dropped yet: retry a few times before giving up.
    if (e instanceof ChatError && e.route === Routes.enter && e.code === 500) {
      state.dupes++;
      if (state.dupes >= 5) {
        leave(e.message);
        return;
      }
    }
    scheduleAttempt();
  }
}

window.addEventListener('online', () => {
  if (document.body.dataset.phase === 'reconnecting' && state.timer !== null) {
    clearTimeout(state.timer);
    tryReconnect();
  }
});

function leave(error = '') {
  state.gen++;
  clearTimeout(state.timer);
  state.timer = null;
  const c = state.client;
  state.client = null;
  c?.close();
  state.members.clear();
  document.title = 'chatbench chat';
  setPhase('login');
  ui.loginError.textContent = error;
  ui.name.focus();
}

ui.leave.addEventListener('click', () => leave());

// ---- composer ------------------------------------------------------------

let noteTimer = null;
function note(text) {
  ui.composerNote.textContent = text;
  clearTimeout(noteTimer);
  noteTimer = setTimeout(() => { ui.composerNote.textContent = ''; }, 5000);
}

ui.composer.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const content = ui.text.value;
  if (!content.trim() || !state.client) return;
  const target = ui.target.value || EVERYONE;
  const client = state.client;
  ui.send.disabled = true;
  try {
    const res = await client.request(Routes.send, { rid: state.room, content, from: state.me, target });
    if (isErrorResponse(res)) {
      systemLine(errorText(Routes.send, res), 'error');
      return;
    }
    ui.text.value = '';
    // The server echoes messages to everyone to the sender, but not private
    // ones: show our own private message here.
    if (target !== EVERYONE) chatLine({ from: state.me, target, msg: content });
  } catch {
    systemLine('Not sent: the connection dropped', 'error');
  } finally {
    ui.send.disabled = document.body.dataset.phase !== 'online';
    if (document.body.dataset.phase === 'online') ui.text.focus();
  }
});

ui.text.addEventListener('keydown', (ev) => {
  if (ev.key === 'Escape' && ui.target.value !== EVERYONE) pickTarget(EVERYONE);
});

// ---- start ---------------------------------------------------------------

// For tests and debugging: a read-only view of the session state.
window.chatbenchState = () => ({
  phase: document.body.dataset.phase,
  me: state.me,
  room: state.room,
  members: [...state.members].sort(),
  reconnectPending: state.timer !== null,
  attempt: state.attempt,
  joins: state.joins,
  entered: state.entered,
  connector: state.connector,
});

(function init() {
  const q = new URLSearchParams(window.location.search);
  let name = q.get('name') ?? '';
  let room = q.get('room') ?? '';
  try {
    name ||= localStorage.getItem('chatbench.name') ?? '';
    room ||= localStorage.getItem('chatbench.room') ?? '';
  } catch { /* storage may be off */ }
  ui.name.value = name;
  ui.room.value = room || 'lobby';
  setPhase('login');
  (name ? ui.joinBtn : ui.name).focus();
})();
