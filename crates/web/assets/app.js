// Sightline dashboard: one page, hash routes, plain DOM. It talks to the JSON API of the
// server that served it (same origin), authenticated by the session cookie set at login;
// changes carry the CSRF token from the readable cookie (double submit).
'use strict';

const $ = (sel, root = document) => root.querySelector(sel);
const main = () => $('#main');

// ---------------------------------------------------------------- HTTP ----

function cookie(name) {
  const m = document.cookie.split(';').map(s => s.trim()).find(s => s.startsWith(name + '='));
  return m ? decodeURIComponent(m.slice(name.length + 1)) : null;
}

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error && body.error.code;
    this.details = body && body.error && body.error.details;
  }
}

async function api(method, path, body, opts = {}) {
  const headers = {};
  if (method !== 'GET') {
    const csrf = cookie('sightline_csrf');
    if (csrf) headers['X-CSRF-Token'] = csrf;
  }
  let payload;
  if (body instanceof FormData) {
    payload = body;
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const r = await fetch(path, { method, headers, body: payload, credentials: 'same-origin' });
  if (r.status === 401 && !opts.noLoginRedirect) {
    location.hash = '#/login';
    throw new ApiError(401, await r.json().catch(() => null));
  }
  if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => null));
  if (r.status === 204) return null;
  const type = r.headers.get('content-type') || '';
  return type.includes('json') ? r.json() : r.text();
}

// ---------------------------------------------------------------- DOM ----

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function toast(text, bad = false) {
  const d = h('div', { class: bad ? 'bad' : '' }, text);
  $('#toast').append(d);
  setTimeout(() => d.remove(), bad ? 8000 : 4000);
}

function fail(e) {
  console.error(e);
  if (e.status !== 401) toast(e.message || String(e), true);
}

function fmtTime(v) {
  if (v === null || v === undefined) return '';
  const d = typeof v === 'number' ? new Date(v) : new Date(v);
  return d.toLocaleString();
}

function ago(ms) {
  const s = Math.max(0, (Date.now() - ms) / 1000);
  if (s < 60) return `${s.toFixed(0)} s ago`;
  if (s < 3600) return `${(s / 60).toFixed(0)} min ago`;
  return `${(s / 3600).toFixed(1)} h ago`;
}

function badge(state) { return h('span', { class: `badge ${state}` }, state); }

// ---------------------------------------------------------------- session ----

const session = { role: 'viewer', auth: true, version: '' };
const canEdit = () => session.role === 'admin' || session.role === 'operator';
const isAdmin = () => session.role === 'admin';

async function loadSession() {
  try {
    Object.assign(session, await api('GET', '/ui/whoami', undefined, { noLoginRedirect: true }));
    $('#who').replaceChildren(
      h('span', {}, `${session.role}${session.auth ? '' : ' (open: no tokens)'} · v${session.version} `),
      session.auth ? h('button', { onclick: logout, id: 'logout' }, 'Log out') : '',
    );
    return true;
  } catch (e) {
    if (e.status === 401) return false;
    throw e;
  }
}

async function logout() {
  await api('POST', '/ui/logout').catch(() => {});
  location.hash = '#/login';
  location.reload();
}

function pageLogin() {
  const input = h('input', { type: 'password', id: 'token', placeholder: 'slt_…', autocomplete: 'off', size: 48 });
  const err = h('p', { class: 'error' });
  const submit = async (ev) => {
    ev.preventDefault();
    try {
      await api('POST', '/ui/login', { token: input.value }, { noLoginRedirect: true });
      location.hash = '#/';
      location.reload();
    } catch (e) {
      err.textContent = e.message;
    }
  };
  main().replaceChildren(h('div', { class: 'panel login' },
    h('h1', {}, 'Sign in'),
    h('p', { class: 'muted' }, 'Paste an API token (sightline token create --role viewer|operator|admin).'),
    h('form', { onsubmit: submit }, input, ' ', h('button', { class: 'primary', type: 'submit', id: 'login' }, 'Sign in')),
    err));
  input.focus();
}

// ---------------------------------------------------------------- router ----

let cleanup = [];
function onLeave(fn) { cleanup.push(fn); }

const routes = [
  [/^#\/login$/, pageLogin, null],
  [/^#?\/?$/, pageRuns, 'runs'],
  [/^#\/runs\/([^/]+)$/, pageRun, 'runs'],
  [/^#\/runs\/([^/]+)\/editor$/, pageEditor, 'runs'],
  [/^#\/events$/, pageEvents, 'events'],
  [/^#\/configs$/, pageConfigs, 'configs'],
  [/^#\/configs\/([^/]+)$/, pageConfig, 'configs'],
  [/^#\/models$/, pageModels, 'models'],
  [/^#\/system$/, pageSystem, 'system'],
];

async function route() {
  for (const f of cleanup.splice(0)) { try { f(); } catch (_) { /* gone */ } }
  document.querySelectorAll('.modal').forEach(m => m.remove());
  const hash = location.hash || '#/';
  for (const [re, page, nav] of routes) {
    const m = hash.match(re);
    if (!m) continue;
    document.querySelectorAll('#nav a').forEach(a => a.classList.toggle('active', a.dataset.nav === nav));
    try {
      await page(...m.slice(1).map(decodeURIComponent));
    } catch (e) {
      fail(e);
      if (e.status !== 401) main().replaceChildren(h('p', { class: 'error' }, e.message));
    }
    return;
  }
  main().replaceChildren(h('p', {}, 'No such page. ', h('a', { href: '#/' }, 'Runs')));
}

function every(ms, fn) {
  const t = setInterval(fn, ms);
  onLeave(() => clearInterval(t));
}

// ---------------------------------------------------------------- runs ----

async function configNames() {
  return (await api('GET', '/v1/configs')).map(c => c.name);
}

async function runAction(id, action) {
  try {
    if (action === 'delete') {
      if (!confirm(`Delete run ${id} and its events?`)) return;
      await api('DELETE', `/v1/runs/${encodeURIComponent(id)}`);
    } else {
      await api('POST', `/v1/runs/${encodeURIComponent(id)}/${action}`);
    }
    toast(`${action}: ${id}`);
  } catch (e) { fail(e); }
}

function runButtons(r, after) {
  if (!canEdit()) return '';
  const active = !['stopped', 'completed', 'failed'].includes(r.state);
  const act = (a) => async (ev) => { ev.preventDefault(); ev.stopPropagation(); await runAction(r.id, a); after && after(); };
  return h('span', { class: 'row' },
    active ? h('button', { onclick: act('stop'), dataset: { action: 'stop' } }, 'Stop') : h('button', { onclick: act('start'), dataset: { action: 'start' } }, 'Start'),
    active ? '' : h('button', { class: 'danger', onclick: act('delete'), dataset: { action: 'delete' } }, 'Delete'));
}

async function pageRuns() {
  const filter = h('select', { id: 'state-filter' },
    ['', 'pending', 'starting', 'running', 'retrying', 'stopping', 'stopped', 'completed', 'failed']
      .map(s => h('option', { value: s }, s || 'all states')));
  const grid = h('div', { class: 'grid', id: 'runs' });
  const form = canEdit() ? await addRunForm(() => refresh()) : '';
  main().replaceChildren(
    h('div', { class: 'row' }, h('h1', {}, 'Runs'), h('span', { class: 'spacer' }), filter),
    form, h('p'), grid);
  const tiles = new Map();
  async function refresh() {
    const q = filter.value ? `?state=${filter.value}` : '';
    const page = await api('GET', `/v1/runs${q}&limit=200`.replace('&', q ? '&' : '?'));
    const seen = new Set();
    for (const r of page.items) {
      seen.add(r.id);
      let t = tiles.get(r.id);
      if (!t) {
        t = runTile(r);
        tiles.set(r.id, t);
        grid.append(t.el);
      }
      t.update(r);
    }
    for (const [id, t] of tiles) {
      if (!seen.has(id)) { t.el.remove(); tiles.delete(id); }
    }
    if (!page.items.length && !grid.querySelector('.empty')) {
      grid.append(h('p', { class: 'muted empty' }, 'No runs. Add one above, or start the demo.'));
    } else if (page.items.length) {
      grid.querySelectorAll('.empty').forEach(e => e.remove());
    }
  }
  filter.addEventListener('change', () => refresh().catch(fail));
  await refresh();
  every(2000, () => refresh().catch(fail));
}

function runTile(r) {
  const img = h('img', { alt: '' });
  const thumb = h('div', { class: 'thumb' }, img);
  const name = h('a', { class: 'name', href: `#/runs/${encodeURIComponent(r.id)}` }, r.id);
  const stateEl = h('span');
  const stats = h('div', { class: 'stats' });
  const buttons = h('span');
  const el = h('div', { class: 'tile', dataset: { run: r.id } }, thumb,
    h('div', { class: 'body' }, h('div', { class: 'row' }, name, stateEl, h('span', { class: 'spacer' }), buttons), stats));
  let lastEvent = null;
  return {
    el,
    update(r) {
      stateEl.replaceChildren(badge(r.state));
      const live = r.stats || {};
      const fps = live.fps !== undefined ? `${Number(live.fps).toFixed(1)} fps` : '';
      const drops = (live.frames_dropped || 0);
      stats.replaceChildren(
        h('span', {}, fps), h('span', {}, `drops ${drops}`), h('span', {}, `events ${live.events || 0}`),
        h('span', { class: 'last-event' }, lastEvent ? `last ${ago(lastEvent)}` : ''),
        r.last_error ? h('span', { class: 'error' }, r.last_error.code) : '');
      buttons.replaceChildren(runButtons(r));
      if (r.state === 'running' || r.state === 'retrying') {
        img.src = `/v1/runs/${encodeURIComponent(r.id)}/snapshot.jpg?t=${Date.now()}`;
        img.onerror = () => { img.removeAttribute('src'); };
      }
      api('GET', `/v1/events?run=${encodeURIComponent(r.id)}&order=desc&limit=1`).then(p => {
        if (p.items[0]) lastEvent = p.items[0].wall_ms;
      }).catch(() => {});
    },
  };
}

async function addRunForm(done) {
  const names = await configNames().catch(() => []);
  const source = h('input', { name: 'source', placeholder: 'rtsp://user:pass@camera/stream or file:///…', size: 46, required: true });
  const config = h('select', { name: 'config' }, names.map(n => h('option', { value: n }, n)));
  const id = h('input', { name: 'id', placeholder: 'id (optional)', size: 14 });
  const loop = h('input', { type: 'checkbox', name: 'loop' });
  const err = h('span', { class: 'error' });
  const submit = async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    const body = { source: source.value, config: config.value };
    if (id.value) body.id = id.value;
    if (loop.checked) body.output = { loop: true };
    try {
      const r = await api('POST', '/v1/runs', body);
      toast(`run ${r.id} created`);
      source.value = ''; id.value = '';
      done && done();
    } catch (e) {
      err.textContent = e.details ? e.details.map(d => `${d.path}: ${d.message}`).join('; ') : e.message;
    }
  };
  return h('form', { class: 'panel row', id: 'add-run', onsubmit: submit },
    h('strong', {}, 'Add a run'), source, config, id,
    h('label', { class: 'row' }, loop, 'loop files'), h('button', { class: 'primary', type: 'submit' }, 'Add'), err);
}

// ---------------------------------------------------------------- live view ----

// Plays the run's stream: fragmented MP4 over a WebSocket into Media Source Extensions,
// jumping back to live when it drifts; the MJPEG preview where MSE or the codec is missing.
class LivePlayer {
  constructor(box, runId) {
    this.box = box; this.runId = runId; this.closed = false; this.backoff = 500;
    this.video = h('video', { muted: true, autoplay: true, playsinline: true, id: 'live-video' });
    this.video.muted = true;
    this.tag = h('span', { class: 'tag' }, 'connecting…');
    box.replaceChildren(this.video, this.tag);
    if (!window.MediaSource) { this.fallback('MSE not available'); return; }
    this.connect();
    this.timer = setInterval(() => this.keepLive(), 250);
  }

  connect() {
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${proto}://${location.host}/v1/runs/${encodeURIComponent(this.runId)}/live`);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    this.queue = [];
    ws.onmessage = (m) => {
      if (typeof m.data === 'string') this.control(JSON.parse(m.data));
      else { this.queue.push(m.data); this.pump(); }
    };
    ws.onopen = () => { this.backoff = 500; };
    ws.onclose = () => {
      if (this.closed || this.mjpeg) return;
      this.tag.textContent = 'reconnecting…';
      setTimeout(() => !this.closed && this.connect(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, 8000);
    };
  }

  control(msg) {
    if (msg.type !== 'init') return;
    const mime = `video/mp4; codecs="${msg.codec}"`;
    if (!MediaSource.isTypeSupported(mime)) { this.fallback(`${msg.codec} not supported`); return; }
    // A new stream (first connection, reconnect, new resolution): a fresh MediaSource.
    this.queue = [];
    this.ms = new MediaSource();
    this.sb = null;
    this.video.src = URL.createObjectURL(this.ms);
    this.ms.addEventListener('sourceopen', () => {
      this.sb = this.ms.addSourceBuffer(mime);
      this.sb.mode = 'sequence';
      this.sb.addEventListener('updateend', () => this.pump());
      this.pump();
    }, { once: true });
    this.tag.textContent = `live · ${msg.width}×${msg.height}`;
    this.video.play().catch(() => {});
  }

  pump() {
    if (!this.sb || this.sb.updating || !this.queue.length) return;
    try { this.sb.appendBuffer(this.queue.shift()); } catch (e) { console.warn(e); this.queue = []; }
  }

  keepLive() {
    const v = this.video;
    if (!this.sb || !v.buffered.length) return;
    const end = v.buffered.end(v.buffered.length - 1);
    // A late joiner starts at the current GOP's keyframe, up to a second in the past: jump to
    // the newest frame when that far behind, and play slightly faster to close a small lag.
    const lag = end - v.currentTime;
    if (lag > 0.5) v.currentTime = end - 0.05;
    v.playbackRate = lag > 0.2 ? 1.1 : 1.0;
    if (v.paused) v.play().catch(() => {});
    const start = v.buffered.start(0);
    if (!this.sb.updating && v.currentTime - start > 30) {
      try { this.sb.remove(start, v.currentTime - 10); } catch (_) { /* busy */ }
    }
  }

  fallback(why) {
    this.mjpeg = true;
    if (this.ws) this.ws.close();
    const img = h('img', { src: `/v1/runs/${encodeURIComponent(this.runId)}/preview`, id: 'live-mjpeg', alt: 'live' });
    this.box.replaceChildren(img, h('span', { class: 'tag' }, `MJPEG (${why})`));
  }

  close() {
    this.closed = true;
    clearInterval(this.timer);
    if (this.ws) this.ws.close();
    if (this.video) { this.video.removeAttribute('src'); this.video.load(); }
  }
}

// ---------------------------------------------------------------- run page ----

async function pageRun(id) {
  let detail;
  try {
    detail = await api('GET', `/v1/runs/${encodeURIComponent(id)}`);
  } catch (e) {
    if (e.status === 404) {
      main().replaceChildren(h('h1', {}, `Run ${id}`), h('p', { class: 'error', id: 'run-gone' }, `Run ${id} does not exist (it may have been deleted).`), h('a', { href: '#/' }, '← Runs'));
      return;
    }
    throw e;
  }
  const liveBox = h('div', { class: 'live', id: 'live' });
  const info = h('div', { class: 'kv', id: 'run-info' });
  const head = h('div', { class: 'row' });
  const transitions = h('tbody');
  const events = h('tbody', { id: 'run-events' });
  main().replaceChildren(
    head,
    h('div', { class: 'two' },
      h('div', {}, liveBox),
      h('div', { class: 'panel' }, info)),
    h('h2', {}, 'Events'), h('table', {}, h('thead', {}, eventHeader(false)), events),
    h('h2', {}, 'Status history'),
    h('table', {}, h('thead', {}, h('tr', {}, ['time', 'from', 'to', 'reason', 'message', 'worker'].map(t => h('th', {}, t)))), transitions));
  let player = null;
  const render = (d) => {
    const r = d; // the run's fields, with `transitions` and `live`
    head.replaceChildren(h('h1', {}, `Run ${r.id} `), badge(r.state), h('span', { class: 'spacer' }),
      canEdit() ? h('a', { class: 'button', href: `#/runs/${encodeURIComponent(r.id)}/editor`, id: 'edit-zones' }, 'Edit zones & rules') : '',
      runButtons(r, () => refresh()));
    const live = d.live || {};
    info.replaceChildren(
      ...kv('Source', r.source), ...kv('Config', h('a', { href: `#/configs/${encodeURIComponent(r.config)}` }, `${r.config} v${r.config_version}`)),
      ...kv('RTSP', r.rtsp_url || '—'), ...kv('Owner', r.owner || '—'), ...kv('Attempts', r.attempts),
      ...kv('Last error', r.last_error ? h('span', { class: 'error', id: 'last-error' }, `${r.last_error.code}: ${r.last_error.message}`) : '—'),
      ...kv('Live', live.fps !== undefined ? `${Number(live.fps).toFixed(1)} fps · p95 ${Number(live.latency_ms_p95 || 0).toFixed(0)} ms · ${live.frames_out || 0} frames` : 'not on this server'),
      ...kv('Drops', `${live.frames_dropped || 0} frames`));
    transitions.replaceChildren(...d.transitions.slice().reverse().map(t => h('tr', {},
      h('td', {}, fmtTime(t.at)), h('td', {}, t.from || ''), h('td', {}, badge(t.to)), h('td', {}, t.reason),
      h('td', { class: 'small' }, t.message || ''), h('td', { class: 'small muted' }, t.worker || ''))));
    const playing = r.state === 'running' || r.state === 'retrying';
    if (playing && !player) { player = new LivePlayer(liveBox, r.id); }
    if (!playing && !player) liveBox.replaceChildren(h('p', { class: 'muted', style: 'padding:40px' }, `Not live (${r.state}).`));
  };
  onLeave(() => player && player.close());
  async function refresh() {
    try {
      render(await api('GET', `/v1/runs/${encodeURIComponent(id)}`));
    } catch (e) {
      if (e.status === 404) { head.replaceChildren(h('p', { class: 'error', id: 'run-gone' }, `Run ${id} was deleted.`)); return; }
      throw e;
    }
  }
  render(detail);
  const evs = await api('GET', `/v1/events?run=${encodeURIComponent(id)}&order=desc&limit=30`);
  events.replaceChildren(...evs.items.map(e => eventRow(e, false)));
  liveEvents((e) => {
    if (e.run_id === id) { events.prepend(eventRow(e, false)); while (events.children.length > 100) events.lastChild.remove(); }
  }, id);
  every(2000, () => refresh().catch(fail));
}

function kv(k, v) { return [h('div', {}, k), h('div', {}, v)]; }

// ---------------------------------------------------------------- events ----

function eventHeader(withRun) {
  return h('tr', {}, ['', 'time', withRun ? 'run' : null, 'type', 'rule', 'class', 'zone / line'].filter(x => x !== null).map(t => h('th', {}, t)));
}

function eventRow(e, withRun) {
  const media = e.media || {};
  const pic = media.crop || media.snapshot;
  const img = pic ? h('img', { class: 'thumb', src: pic.url.replace(/^https?:\/\/[^/]+/, ''), alt: e.type, loading: 'lazy' }) : h('span', { class: 'muted small' }, '—');
  const place = e.zone || (e.line ? `${e.line} ${e.direction || ''}` : '');
  return h('tr', { class: 'clickable event', dataset: { id: e.id }, onclick: () => showEvent(e) },
    h('td', {}, img), h('td', {}, fmtTime(e.wall_ms)), withRun ? h('td', {}, e.run_id) : null,
    h('td', {}, e.type), h('td', {}, e.rule), h('td', {}, e.class || ''), h('td', {}, place));
}

function showEvent(e) {
  const media = e.media || {};
  const local = (u) => u.replace(/^https?:\/\/[^/]+/, '');
  const body = [h('h2', {}, `${e.type} · ${e.rule}`), h('p', { class: 'muted' }, `${fmtTime(e.wall_ms)} · run ${e.run_id} · ${e.class || ''} ${e.confidence ? (e.confidence * 100).toFixed(0) + ' %' : ''}`)];
  if (media.snapshot) body.push(h('img', { src: local(media.snapshot.url), alt: 'snapshot', id: 'event-snapshot' }));
  else if (media.crop) body.push(h('img', { src: local(media.crop.url), alt: 'crop' }));
  const clip = h('div');
  body.push(clip);
  const m = h('div', { class: 'modal', onclick: (ev) => { if (ev.target === m) m.remove(); } },
    h('div', { class: 'panel' }, ...body, h('p', {}, h('button', { onclick: () => m.remove() }, 'Close'))));
  document.body.append(m);
  // The clip around the event, where the run was recording.
  api('GET', `/v1/runs/${encodeURIComponent(e.run_id)}/recordings?since=${e.wall_ms - 10000}&until=${e.wall_ms + 10000}`).then(p => {
    if (!p.items.some(s => s.state === 'closed')) return;
    const src = `/v1/runs/${encodeURIComponent(e.run_id)}/clip.mp4?start=${e.wall_ms - 5000}&end=${e.wall_ms + 5000}`;
    clip.replaceChildren(h('h2', {}, 'Clip (±5 s)'), h('video', { src, controls: true }));
  }).catch(() => {});
}

function liveEvents(onEvent, run) {
  const q = run ? `?run=${encodeURIComponent(run)}` : '';
  const es = new EventSource(`/v1/events/stream${q}`);
  es.addEventListener('rule', (m) => { try { onEvent(JSON.parse(m.data)); } catch (_) { /* bad line */ } });
  onLeave(() => es.close());
}

async function pageEvents() {
  const f = {
    run: h('input', { placeholder: 'run', size: 10, name: 'run' }),
    type: h('select', { name: 'type' }, ['', 'zone_enter', 'zone_exit', 'line_cross', 'dwell', 'count', 'detected', 'plate', 'plate_match'].map(t => h('option', { value: t }, t || 'any type'))),
    class: h('input', { placeholder: 'class', size: 8, name: 'class' }),
    zone: h('input', { placeholder: 'zone', size: 8, name: 'zone' }),
    since: h('input', { type: 'datetime-local', name: 'since' }),
    until: h('input', { type: 'datetime-local', name: 'until' }),
  };
  const body = h('tbody', { id: 'events' });
  const more = h('button', { id: 'more' }, 'Load more');
  const err = h('p', { class: 'error' });
  let cursor = null;
  const query = () => {
    const p = new URLSearchParams({ order: 'desc', limit: '50' });
    for (const k of ['run', 'type', 'class', 'zone']) if (f[k].value) p.set(k, f[k].value);
    for (const k of ['since', 'until']) if (f[k].value) p.set(k, new Date(f[k].value).toISOString());
    if (cursor) p.set('cursor', cursor);
    return p.toString();
  };
  const matches = (e) => (!f.run.value || e.run_id === f.run.value) && (!f.type.value || e.type === f.type.value)
    && (!f.class.value || e.class === f.class.value) && (!f.zone.value || e.zone === f.zone.value) && !f.until.value;
  async function load(reset) {
    err.textContent = '';
    if (reset) { cursor = null; body.replaceChildren(); }
    try {
      const page = await api('GET', `/v1/events?${query()}`);
      body.append(...page.items.map(e => eventRow(e, true)));
      cursor = page.next_cursor;
      more.disabled = !cursor;
    } catch (e) {
      err.textContent = e.details ? e.details.map(d => `${d.path}: ${d.message}`).join('; ') : e.message;
    }
  }
  more.addEventListener('click', () => load(false));
  const apply = h('button', { class: 'primary', onclick: () => load(true) }, 'Filter');
  main().replaceChildren(h('h1', {}, 'Events'),
    h('div', { class: 'panel row' }, Object.values(f), apply), err,
    h('table', {}, h('thead', {}, eventHeader(true)), body), h('p', {}, more));
  await load(true);
  liveEvents((e) => { if (matches(e)) body.prepend(eventRow(e, true)); });
}

// ---------------------------------------------------------------- zone editor ----

async function pageEditor(id) {
  const run = await api('GET', `/v1/runs/${encodeURIComponent(id)}`);
  const versions = await api('GET', `/v1/configs/${encodeURIComponent(run.config)}/versions`);
  const current = versions.find(v => v.version === run.config_version) || versions[versions.length - 1];
  const cfg = JSON.parse(JSON.stringify(current.body));
  cfg.zones = cfg.zones || {}; cfg.lines = cfg.lines || {}; cfg.rules = cfg.rules || [];
  let sel = null; // {kind: 'zone'|'line', name}
  let drag = null; // index of the dragged point
  let mode = null; // 'zone' | 'line' while drawing a new shape
  const img = h('img', { id: 'editor-image', alt: 'latest snapshot', src: `/v1/runs/${encodeURIComponent(id)}/snapshot.jpg?raw=true&t=${Date.now()}` });
  const canvas = h('canvas', { id: 'editor-canvas' });
  const box = h('div', { class: 'editor' }, img, canvas);
  const shapes = h('ul', { class: 'shapes', id: 'shapes' });
  const props = h('div', { id: 'shape-props' });
  const rulesBox = h('div', { id: 'rules' });
  const errors = h('div', { id: 'save-errors', class: 'error' });
  const saveBtn = canEdit() ? h('button', { class: 'primary', id: 'save', onclick: save }, 'Save & apply') : '';
  img.onerror = () => box.replaceChildren(h('p', { class: 'muted' }, 'No picture: the run must be live on this server to draw on its snapshot.'), canvas);
  main().replaceChildren(
    h('div', { class: 'row' }, h('h1', {}, `Zones & rules · ${run.id}`), h('span', { class: 'muted' }, `${run.config} v${current.version}`), h('span', { class: 'spacer' }),
      h('a', { href: `#/runs/${encodeURIComponent(id)}` }, '← run')),
    h('div', { class: 'two' },
      h('div', {}, box, h('p', { class: 'muted small' }, 'New zone: click points, then “Finish”. New line: click two points. Drag a point to move it; select a point and press Delete (or right-click it) to remove it.')),
      h('div', { class: 'panel' },
        canEdit() ? h('div', { class: 'row' },
          h('button', { id: 'new-zone', onclick: () => startShape('zone') }, 'New zone'),
          h('button', { id: 'new-line', onclick: () => startShape('line') }, 'New line'),
          h('button', { id: 'finish', onclick: finish }, 'Finish')) : '',
        shapes, props, h('h2', {}, 'Rules'), rulesBox,
        canEdit() ? h('button', { id: 'add-rule', onclick: () => { cfg.rules.push({ type: 'zone', name: `rule_${cfg.rules.length + 1}`, zone: Object.keys(cfg.zones)[0] || '' }); renderRules(); } }, 'Add rule') : '',
        h('p'), saveBtn, errors)));

  const points = () => {
    if (!sel) return null;
    if (sel.kind === 'zone') return cfg.zones[sel.name].points;
    const l = cfg.lines[sel.name];
    return [l.a, l.b];
  };
  function setPoints(pts) {
    if (sel.kind === 'zone') cfg.zones[sel.name].points = pts;
    else { cfg.lines[sel.name].a = pts[0]; cfg.lines[sel.name].b = pts[1]; }
  }
  let selPoint = null;
  function startShape(kind) {
    let i = 1; const pool = kind === 'zone' ? cfg.zones : cfg.lines;
    while (pool[`${kind}_${i}`]) i++;
    const name = `${kind}_${i}`;
    if (kind === 'zone') cfg.zones[name] = { points: [] };
    else cfg.lines[name] = { a: null, b: null };
    sel = { kind, name }; mode = kind; selPoint = null;
    renderShapes(); draw();
  }
  function finish() {
    if (mode === 'zone' && points().length < 3) { toast('a zone needs at least 3 points', true); return; }
    mode = null; renderShapes(); draw();
  }
  function norm(ev) {
    const r = canvas.getBoundingClientRect();
    const clamp = (v) => Math.min(1, Math.max(0, v));
    return [Number(clamp((ev.clientX - r.left) / r.width).toFixed(4)), Number(clamp((ev.clientY - r.top) / r.height).toFixed(4))];
  }
  function hit(ev) {
    const pts = points(); if (!pts) return -1;
    const r = canvas.getBoundingClientRect();
    return pts.findIndex(p => p && Math.hypot(p[0] * r.width - (ev.clientX - r.left), p[1] * r.height - (ev.clientY - r.top)) < 8);
  }
  canvas.addEventListener('mousedown', (ev) => {
    if (!canEdit() || ev.button !== 0) return;
    const p = norm(ev);
    if (mode === 'zone') { cfg.zones[sel.name].points.push(p); draw(); return; }
    if (mode === 'line') {
      const l = cfg.lines[sel.name];
      if (!l.a) l.a = p; else { l.b = p; mode = null; renderShapes(); }
      draw(); return;
    }
    const i = hit(ev);
    if (i >= 0) { drag = i; selPoint = i; draw(); return; }
    // Select the shape under the click.
    for (const [name, z] of Object.entries(cfg.zones)) if (inside(p, z.points)) { sel = { kind: 'zone', name }; selPoint = null; renderShapes(); draw(); return; }
  });
  canvas.addEventListener('mousemove', (ev) => {
    if (drag === null) return;
    const pts = points().slice(); pts[drag] = norm(ev); setPoints(pts); draw();
  });
  window.addEventListener('mouseup', () => { drag = null; });
  canvas.addEventListener('contextmenu', (ev) => {
    ev.preventDefault();
    const i = hit(ev); if (i >= 0) { selPoint = i; removePoint(); }
  });
  const onKey = (ev) => { if ((ev.key === 'Delete' || ev.key === 'Backspace') && selPoint !== null && document.activeElement.tagName !== 'INPUT') removePoint(); };
  window.addEventListener('keydown', onKey);
  onLeave(() => window.removeEventListener('keydown', onKey));
  function removePoint() {
    if (!sel || sel.kind !== 'zone') return;
    const pts = points().slice(); pts.splice(selPoint, 1); setPoints(pts); selPoint = null; draw();
  }
  function inside(p, poly) {
    let c = false;
    for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
      const [xi, yi] = poly[i], [xj, yj] = poly[j];
      if ((yi > p[1]) !== (yj > p[1]) && p[0] < (xj - xi) * (p[1] - yi) / (yj - yi) + xi) c = !c;
    }
    return c;
  }
  function draw() {
    const w = img.naturalWidth || 768, hgt = img.naturalHeight || 576;
    canvas.width = w; canvas.height = hgt;
    const g = canvas.getContext('2d');
    g.clearRect(0, 0, w, hgt);
    g.lineWidth = 2; g.font = '14px sans-serif';
    for (const [name, z] of Object.entries(cfg.zones)) {
      const on = sel && sel.kind === 'zone' && sel.name === name;
      g.strokeStyle = on ? '#4fc3f7' : (z.color || '#ffb300'); g.fillStyle = on ? 'rgba(79,195,247,.25)' : 'rgba(255,179,0,.12)';
      if (!z.points.length) continue;
      g.beginPath(); z.points.forEach(([x, y], i) => i ? g.lineTo(x * w, y * hgt) : g.moveTo(x * w, y * hgt));
      if (!(on && mode === 'zone')) g.closePath();
      g.fill(); g.stroke();
      g.fillStyle = '#fff'; g.fillText(name, z.points[0][0] * w + 4, z.points[0][1] * hgt - 4);
      if (on) z.points.forEach(([x, y], i) => { g.fillStyle = i === selPoint ? '#ef5350' : '#4fc3f7'; g.fillRect(x * w - 4, y * hgt - 4, 8, 8); });
    }
    for (const [name, l] of Object.entries(cfg.lines)) {
      const on = sel && sel.kind === 'line' && sel.name === name;
      if (!l.a) continue;
      g.strokeStyle = on ? '#4fc3f7' : '#ffd54f';
      g.beginPath(); g.moveTo(l.a[0] * w, l.a[1] * hgt); if (l.b) g.lineTo(l.b[0] * w, l.b[1] * hgt); g.stroke();
      g.fillStyle = '#fff'; g.fillText(name, l.a[0] * w + 4, l.a[1] * hgt - 4);
      if (on) [l.a, l.b].filter(Boolean).forEach(([x, y], i) => { g.fillStyle = i === selPoint ? '#ef5350' : '#4fc3f7'; g.fillRect(x * w - 4, y * hgt - 4, 8, 8); });
    }
  }
  img.addEventListener('load', draw);
  function renderShapes() {
    const item = (kind, name) => h('li', { class: sel && sel.kind === kind && sel.name === name ? 'sel' : '', dataset: { shape: `${kind}:${name}` } },
      h('a', { href: 'javascript:void 0', onclick: () => { sel = { kind, name }; selPoint = null; mode = null; renderShapes(); draw(); } }, `${kind} ${name}`));
    shapes.replaceChildren(...Object.keys(cfg.zones).map(n => item('zone', n)), ...Object.keys(cfg.lines).map(n => item('line', n)));
    props.replaceChildren();
    if (!sel) return;
    const nameIn = h('input', { value: sel.name, id: 'shape-name', 'data-path': `${sel.kind}s.${sel.name}` });
    nameIn.addEventListener('change', () => rename(nameIn.value.trim()));
    const del = h('button', { class: 'danger', id: 'delete-shape', onclick: () => { delete (sel.kind === 'zone' ? cfg.zones : cfg.lines)[sel.name]; sel = null; renderShapes(); renderRules(); draw(); } }, 'Delete');
    props.append(h('div', { class: 'row' }, h('label', {}, 'Name', nameIn), canEdit() ? del : ''));
  }
  function rename(to) {
    if (!to || to === sel.name) return;
    const pool = sel.kind === 'zone' ? cfg.zones : cfg.lines;
    if (pool[to]) { toast(`${to} exists`, true); return; }
    pool[to] = pool[sel.name]; delete pool[sel.name];
    for (const r of cfg.rules) { if (sel.kind === 'zone' && r.zone === sel.name) r.zone = to; if (sel.kind === 'line' && r.line === sel.name) r.line = to; }
    sel.name = to; renderShapes(); renderRules(); draw();
  }
  const FIELDS = {
    zone: ['zone', 'classes', 'min_confidence'], line: ['line', 'classes', 'min_confidence'],
    dwell: ['zone', 'classes', 'seconds', 'min_confidence'], count: ['zone', 'classes', 'threshold', 'seconds'],
    detected: ['classes', 'min_confidence'],
  };
  function renderRules() {
    rulesBox.replaceChildren(...cfg.rules.map((r, i) => {
      const path = (f) => `rules[${i}]${f ? '.' + f : ''}`;
      const type = h('select', { 'data-path': path('type'), disabled: !canEdit() }, Object.keys(FIELDS).map(t => h('option', { value: t, selected: t === r.type }, t)));
      type.addEventListener('change', () => {
        const keep = { type: type.value, name: r.name, classes: r.classes };
        if (['zone', 'dwell', 'count'].includes(type.value)) keep.zone = r.zone || Object.keys(cfg.zones)[0];
        if (type.value === 'line') keep.line = r.line || Object.keys(cfg.lines)[0];
        if (type.value === 'dwell') keep.seconds = 5;
        if (type.value === 'count') { keep.threshold = 3; keep.seconds = 1; }
        cfg.rules[i] = keep; renderRules();
      });
      const name = h('input', { value: r.name || '', size: 14, 'data-path': path('name'), disabled: !canEdit() });
      name.addEventListener('change', () => { r.name = name.value; });
      const fields = FIELDS[r.type] || [];
      const inputs = fields.map(f => {
        let el;
        if (f === 'zone' || f === 'line') {
          const pool = Object.keys(f === 'zone' ? cfg.zones : cfg.lines);
          el = h('select', { 'data-path': path(f), disabled: !canEdit() }, pool.map(n => h('option', { value: n, selected: n === r[f] }, n)));
          el.addEventListener('change', () => { r[f] = el.value; });
        } else if (f === 'classes') {
          el = h('input', { value: (r.classes || []).join(', '), placeholder: 'all classes', size: 16, 'data-path': path(f), disabled: !canEdit() });
          el.addEventListener('change', () => { r.classes = el.value.split(',').map(s => s.trim()).filter(Boolean); });
        } else {
          const shown = typeof r[f] === 'number' ? Number(r[f].toFixed(4)) : '';
          el = h('input', { type: 'number', step: 'any', value: shown, size: 6, 'data-path': path(f), disabled: !canEdit() });
          el.addEventListener('change', () => { if (el.value === '') delete r[f]; else r[f] = Number(el.value); });
        }
        return h('label', {}, f, el, h('span', { class: 'field-error', 'data-error': path(f) }));
      });
      const del = canEdit() ? h('button', { class: 'danger', onclick: () => { cfg.rules.splice(i, 1); renderRules(); } }, '×') : '';
      return h('div', { class: 'rule', dataset: { rule: i } }, h('div', { class: 'row' }, h('label', {}, 'type', type), h('label', {}, 'name', name, h('span', { class: 'field-error', 'data-error': path('name') })), ...inputs, del));
    }));
  }
  async function save() {
    if (mode) finish();
    errors.replaceChildren();
    document.querySelectorAll('.invalid').forEach(e => e.classList.remove('invalid'));
    document.querySelectorAll('[data-error]').forEach(e => { e.textContent = ''; });
    try {
      const v = await api('PUT', `/v1/configs/${encodeURIComponent(run.config)}`, cfg);
      await api('POST', `/v1/runs/${encodeURIComponent(run.id)}/config`, { version: v.version });
      toast(`saved as ${run.config} v${v.version}, applied to ${run.id}`);
      errors.replaceChildren(h('span', { class: 'muted', id: 'saved' }, `Saved: version ${v.version}`));
    } catch (e) {
      const details = Array.isArray(e.details) ? e.details : [];
      for (const d of details) {
        const slot = document.querySelector(`[data-error="${CSS.escape(d.path)}"]`);
        const input = document.querySelector(`[data-path="${CSS.escape(d.path)}"]`);
        if (slot) slot.textContent = d.message;
        if (input) input.classList.add('invalid');
      }
      errors.replaceChildren(h('p', {}, e.message), h('ul', {}, details.map(d => h('li', {}, `${d.path}: ${d.message}`))));
    }
  }
  renderShapes(); renderRules(); draw();
}

// ---------------------------------------------------------------- configs ----

async function pageConfigs() {
  const list = await api('GET', '/v1/configs');
  main().replaceChildren(h('h1', {}, 'Configs'),
    h('table', { id: 'configs' }, h('thead', {}, h('tr', {}, ['name', 'latest version', 'updated'].map(t => h('th', {}, t)))),
      h('tbody', {}, list.map(c => h('tr', { class: 'clickable', onclick: () => { location.hash = `#/configs/${encodeURIComponent(c.name)}`; } },
        h('td', {}, c.name), h('td', {}, c.latest_version), h('td', {}, fmtTime(c.updated_at)))))));
}

// A line diff (longest common subsequence), enough for two pretty-printed configs.
function diffLines(a, b) {
  const n = a.length, m = b.length;
  const L = Array.from({ length: n + 1 }, () => new Uint16Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) L[i][j] = a[i] === b[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) { out.push([' ', a[i]]); i++; j++; } else if (L[i + 1][j] >= L[i][j + 1]) { out.push(['-', a[i++]]); } else { out.push(['+', b[j++]]); }
  }
  while (i < n) out.push(['-', a[i++]]);
  while (j < m) out.push(['+', b[j++]]);
  return out;
}

async function pageConfig(name) {
  const versions = await api('GET', `/v1/configs/${encodeURIComponent(name)}/versions`);
  const opts = () => versions.map(v => h('option', { value: v.version }, `v${v.version} · ${fmtTime(v.created_at)}`));
  const left = h('select', { id: 'diff-a' }, opts()), right = h('select', { id: 'diff-b' }, opts());
  if (versions.length > 1) left.value = versions[versions.length - 2].version;
  right.value = versions[versions.length - 1].version;
  const out = h('pre', { class: 'diff', id: 'diff' });
  const show = () => {
    const a = versions.find(v => String(v.version) === left.value), b = versions.find(v => String(v.version) === right.value);
    const d = diffLines(JSON.stringify(a.body, null, 2).split('\n'), JSON.stringify(b.body, null, 2).split('\n'));
    const changed = d.some(([t]) => t !== ' ');
    out.replaceChildren(...(changed ? d : [[' ', '(identical)']]).map(([t, l]) => h('div', { class: t === '+' ? 'add' : t === '-' ? 'del' : '' }, `${t} ${l}`)));
  };
  left.addEventListener('change', show); right.addEventListener('change', show);
  main().replaceChildren(h('h1', {}, `Config ${name}`), h('p', { class: 'muted' }, `${versions.length} versions`),
    h('div', { class: 'row' }, 'Diff', left, '→', right), out);
  show();
}

// ---------------------------------------------------------------- models ----

async function pageModels() {
  const models = await api('GET', '/v1/models');
  const rows = models.map(m => h('tr', {},
    h('td', {}, m.name),
    h('td', {}, m.manifest.task === 'image_to_image' ? `image_to_image ×${m.manifest.image_to_image.scale}` : (m.manifest.family || '')),
    h('td', {}, (m.manifest.input && m.manifest.input.width) ? `${m.manifest.input.width}×${m.manifest.input.height}` : (m.manifest.image_to_image ? `any (tiles of ${m.manifest.image_to_image.tile})` : '')),
    h('td', {}, `${(m.size_bytes / 1e6).toFixed(1)} MB`), h('td', { class: 'small muted' }, m.sha256.slice(0, 12)),
    h('td', {}, m.loaded ? 'loaded' : ''), h('td', {}, m.builtin ? 'built-in' : ''),
    h('td', {}, isAdmin() && !m.builtin ? h('button', { class: 'danger', onclick: async () => {
      if (!confirm(`Delete model ${m.name}?`)) return;
      try { await api('DELETE', `/v1/models/${encodeURIComponent(m.name)}`); route(); } catch (e) { fail(e); }
    } }, 'Delete') : '')));
  let upload = '';
  if (isAdmin()) {
    const onnx = h('input', { type: 'file', name: 'onnx', accept: '.onnx', required: true });
    const manifest = h('textarea', { name: 'manifest', rows: 6, cols: 60, placeholder: 'name = "my-yolo"\ntask = "detect"\nfamily = "yolov8"\n…', required: true });
    const err = h('p', { class: 'error' });
    upload = h('form', { class: 'panel', onsubmit: async (ev) => {
      ev.preventDefault(); err.textContent = '';
      const fd = new FormData(); fd.append('onnx', onnx.files[0]); fd.append('manifest', manifest.value);
      try { await api('POST', '/v1/models', fd); toast('model registered'); route(); } catch (e) { err.textContent = e.details ? e.details.map(d => `${d.path}: ${d.message}`).join('; ') : e.message; }
    } }, h('h2', {}, 'Upload a model'), h('div', { class: 'row' }, onnx), h('p'), manifest, h('p'), h('button', { class: 'primary', type: 'submit' }, 'Upload'), err);
  }
  main().replaceChildren(h('h1', {}, 'Models'),
    h('table', { id: 'models' }, h('thead', {}, h('tr', {}, ['name', 'family', 'input', 'size', 'sha256', '', '', ''].map(t => h('th', {}, t)))), h('tbody', {}, rows)),
    h('p'), upload);
}

// ---------------------------------------------------------------- system ----

async function pageSystem() {
  const box = h('div', { id: 'system' });
  main().replaceChildren(h('h1', {}, 'System'), box);
  const render = async () => {
    const s = await api('GET', '/v1/system');
    const db = s.database;
    const p = s.process || {};
    const gb = (b) => b === null || b === undefined ? '—' : `${(b / 1e9).toFixed(1)} GB`;
    const media = s.media;
    box.replaceChildren(
      h('div', { class: 'grid' },
        h('div', { class: 'panel' }, h('h2', {}, 'Runs by state'), h('div', { class: 'kv' }, ...Object.entries(db.runs_by_state).flatMap(([k, v]) => kv(k, v)))),
        h('div', { class: 'panel' }, h('h2', {}, 'This server'), h('div', { class: 'kv' },
          ...kv('CPU time', p.cpu_seconds !== undefined ? `${p.cpu_seconds.toFixed(0)} s on ${p.cores} cores` : '—'),
          ...kv('Memory', p.rss_bytes ? `${(p.rss_bytes / 1e6).toFixed(0)} MB` : '—'),
          ...kv('Data disk', p.data_disk_total_bytes ? `${gb(p.data_disk_free_bytes)} free of ${gb(p.data_disk_total_bytes)}` : '—'),
          ...kv('Live runs', s.local_runs.length),
          ...kv('Live viewers', Object.values(s.live_viewers).reduce((a, b) => a + b, 0)))),
        h('div', { class: 'panel', id: 'media-health' }, h('h2', {}, 'Media store'), media ? h('div', { class: 'kv' },
          ...kv('Survival mode', media.survival ? h('span', { class: 'error' }, 'ON — deleting the oldest media') : 'off'),
          ...kv('Volume used', media.used_pct !== null && media.used_pct !== undefined ? `${media.used_pct.toFixed(1)} %` : '—'),
          ...kv('Media stored', gb(media.media_bytes))) : h('p', { class: 'muted' }, 'off')),
        h('div', { class: 'panel' }, h('h2', {}, 'Outbox'), Object.keys(db.outbox).length
          ? h('div', { class: 'kv' }, ...Object.entries(db.outbox).flatMap(([k, v]) => kv(k, `${v.pending} pending · ${v.dead} dead`)))
          : h('p', { class: 'muted' }, 'empty'))),
      h('h2', {}, 'Workers'),
      h('table', { id: 'workers' }, h('thead', {}, h('tr', {}, ['id', 'host', 'capacity', 'active runs', 'heartbeat', 'started'].map(t => h('th', {}, t)))),
        h('tbody', {}, db.workers.map(w => h('tr', {}, h('td', {}, w.id), h('td', {}, w.host), h('td', {}, w.capacity), h('td', {}, w.active_runs),
          h('td', {}, ago(new Date(w.heartbeat_at).getTime())), h('td', {}, fmtTime(w.started_at)))))),
      h('h2', {}, 'Leases'),
      h('table', {}, h('thead', {}, h('tr', {}, ['run', 'owner', 'state', 'expires'].map(t => h('th', {}, t)))),
        h('tbody', {}, db.leases.map(l => h('tr', {}, h('td', {}, h('a', { href: `#/runs/${encodeURIComponent(l.run_id)}` }, l.run_id)), h('td', {}, l.owner), h('td', {}, badge(l.state)),
          h('td', {}, l.lease_expires_at ? fmtTime(l.lease_expires_at) : ''))))),
      h('h2', {}, 'Live runs on this server'),
      h('table', {}, h('thead', {}, h('tr', {}, ['run', 'fps', 'p95', 'frames', 'drops', 'viewers'].map(t => h('th', {}, t)))),
        h('tbody', {}, s.local_runs.map(r => h('tr', {}, h('td', {}, r.run_id), h('td', {}, Number(r.fps || 0).toFixed(1)), h('td', {}, `${Number(r.latency_ms_p95 || 0).toFixed(0)} ms`),
          h('td', {}, r.frames_out), h('td', {}, (r.frames_dropped || 0)), h('td', {}, s.live_viewers[r.run_id] || 0))))));
  };
  await render();
  every(3000, () => render().catch(fail));
}

// ---------------------------------------------------------------- start ----

window.addEventListener('hashchange', route);
(async () => {
  try {
    const ok = await loadSession();
    if (!ok && location.hash !== '#/login') location.hash = '#/login';
  } catch (e) { fail(e); }
  await route();
})();
