/*
 * eastrace session browser. Plain modern JavaScript, no library, no build step.
 *
 * Two data sources behind one interface:
 *   HttpApi  - the eastrace web server's JSON API (filters, sort and paging done by the server)
 *   FileApi  - the data embedded by `eastrace export --html` (the same filters done here)
 *
 * Everything that comes from traffic is put in the page with textContent or as attribute
 * values of elements we create; nothing is ever parsed as HTML.
 */
'use strict';

const ROW_H = 22;
const PAGE = 200;

/* ---- small DOM helpers ---------------------------------------------------------------- */

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); }
function $(id) { return document.getElementById(id); }

const SEV = ['info', 'warning', 'error'];
const SEEN = [[1, 'cap'], [2, 'iis'], [4, 'mbx']];

function pad(n, w) { return String(n).padStart(w, '0'); }
function fmtTime(ms) {
  if (ms === null || ms === undefined) return '-';
  const d = new Date(ms);
  return pad(d.getUTCMonth() + 1, 2) + '-' + pad(d.getUTCDate(), 2) + ' ' +
    pad(d.getUTCHours(), 2) + ':' + pad(d.getUTCMinutes(), 2) + ':' + pad(d.getUTCSeconds(), 2) +
    '.' + pad(d.getUTCMilliseconds(), 3);
}
function fmtIso(ms) { return ms === null || ms === undefined ? '-' : new Date(ms).toISOString(); }
function fmtSize(n) {
  if (n === null || n === undefined) return '-';
  if (n < 1024) return String(n);
  if (n < 1024 * 1024) return (n / 1024).toFixed(1) + 'K';
  return (n / 1048576).toFixed(1) + 'M';
}
function fmtDur(ms) {
  if (ms === null || ms === undefined) return '-';
  if (ms < 1000) return Math.round(ms) + 'ms';
  if (ms < 60000) return (ms / 1000).toFixed(1) + 's';
  return Math.floor(ms / 60000) + 'm' + Math.round((ms % 60000) / 1000) + 's';
}
function fmtSeen(bits) {
  if (!bits) return '';
  return SEEN.filter(s => bits & s[0]).map(s => s[1]).join(' ');
}
/* ASCII-only lower case: the CLI's filters compare ASCII case-insensitively. */
function lowerAscii(s) { return s.replace(/[A-Z]/g, c => String.fromCharCode(c.charCodeAt(0) + 32)); }
/* The user filter as the server's (et_eas_user_match, decoder/eas_ident.c): equal ignoring ASCII
 * case, or the same account when one name is bare ("jdoe" names "CONTOSO\jdoe" and
 * "jdoe@contoso.com") or they are qualified differently; two names qualified the same way must
 * be equal. */
function userMatch(want, have) {
  if (!want || have === null || have === undefined) return false;
  const w = lowerAscii(want), h = lowerAscii(have);
  if (w === h) return true;
  const form = s => s.includes('\\') ? 1 : s.includes('@') ? 2 : 0;
  const bare = s => { s = s.slice(s.lastIndexOf('\\') + 1); const at = s.indexOf('@'); return at < 0 ? s : s.slice(0, at); };
  if (form(w) !== 0 && form(w) === form(h)) return false;
  const b = bare(w);
  return b.length > 0 && b === bare(h);
}

/* ---- data sources --------------------------------------------------------------------- */

class HttpApi {
  constructor() { this.live = false; }
  async get(path) {
    const r = await fetch(path, { credentials: 'same-origin', cache: 'no-store' });
    if (!r.ok) {
      let msg = r.status + ' ' + r.statusText;
      try { const j = await r.json(); if (j.error) msg = j.error; } catch (e) { /* text */ }
      throw new Error(msg);
    }
    return r.json();
  }
  qs(p) {
    const u = new URLSearchParams();
    for (const [k, v] of Object.entries(p)) if (v !== '' && v !== null && v !== undefined && v !== false) u.set(k, v === true ? '1' : v);
    return u.toString();
  }
  rows(p) { return this.get('/api/rows?' + this.qs(p)); }
  exchange(n) { return this.get('/api/exchange/' + encodeURIComponent(n)); }
  devices() { return this.get('/api/devices'); }
  findings() { return this.get('/api/findings'); }
  summary() { return this.get('/api/summary'); }
  wait(v) { return this.get('/api/wait?v=' + encodeURIComponent(v)); }
}

/* The same filters as the server (web/query.c) and the CLI (pipeline/filter.c). */
class FileApi {
  constructor(data) {
    this.d = data;
    this.byN = new Map();
    data.rows.forEach((r, i) => this.byN.set(r.n, i));
    this.lower = null;
    this.key = null;
    this.idx = null;
  }
  eq(want, have) { return have !== null && have !== undefined && lowerAscii(want) === lowerAscii(have); }
  match(r, i, f) {
    if (f.device && !this.eq(f.device, r.dev) && !this.eq(f.device, r.devid)) return false;
    if (f.user && !userMatch(f.user, r.user) && !userMatch(f.user, r.auser)) return false;
    if (f.cmd && !this.eq(f.cmd, r.fcmd)) return false;
    if (f.host && !this.eq(f.host, r.host)) return false;
    if (f.since !== null && (r.t === null || r.t < f.since)) return false;
    if (f.until !== null && (r.t === null || r.t >= f.until)) return false;
    if (f.errors && r.sev < 1) return false;
    if (f.find) {
      if (!this.lower) this.lower = this.d.texts.map(lowerAscii);
      if (!this.lower[i].includes(lowerAscii(f.find))) return false;
    }
    return true;
  }
  parseTime(s) {
    if (!s) return null;
    const t = Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(s) ? s : s.replace(' ', 'T') + 'Z');
    if (Number.isNaN(t)) throw new Error('bad time: use ISO 8601, e.g. 2024-05-01T10:00:00Z');
    return t;
  }
  async rows(p) {
    const f = { device: p.device, user: p.user, cmd: p.cmd, host: p.host, find: p.find,
      errors: !!p.errors, since: this.parseTime(p.since), until: this.parseTime(p.until) };
    const key = JSON.stringify([f, p.sort, p.dir]);
    if (key !== this.key) {
      const rows = this.d.rows;
      let idx = [];
      for (let i = 0; i < rows.length; i++) if (this.match(rows[i], i, f)) idx.push(i);
      const col = p.sort || '', dir = p.dir === 'desc' ? -1 : 1;
      if (col === '' && dir === -1) idx.reverse();
      else if (col !== '') {
        idx.sort((a, b) => {
          const x = rows[a][col], y = rows[b][col];
          let c = 0;
          if (x === null || x === undefined) c = (y === null || y === undefined) ? 0 : -1;
          else if (y === null || y === undefined) c = 1;
          else c = x < y ? -1 : x > y ? 1 : 0;
          if (c === 0) c = rows[a].n - rows[b].n;
          return dir * c;
        });
      }
      this.key = key;
      this.idx = idx;
    }
    const off = p.offset || 0, lim = p.limit || 100;
    return { total: this.d.rows.length, matched: this.idx.length, offset: off,
      rows: this.idx.slice(off, off + lim).map(i => this.d.rows[i]) };
  }
  async exchange(n) {
    const i = this.byN.get(Number(n));
    if (i === undefined) throw new Error('no such exchange');
    return this.d.details[i];
  }
  async devices() { return this.d.devices; }
  async findings() { return this.d.findings; }
  async summary() { return this.d.summary; }
}

/* ---- XML: collapsible, coloured, built as DOM from our own rendering ------------------- */

function decodeEntities(s) {
  return s.replace(/&(lt|gt|amp|quot|apos|#x[0-9a-fA-F]+|#[0-9]+);/g, (m, e) => {
    switch (e) {
      case 'lt': return '<';
      case 'gt': return '>';
      case 'amp': return '&';
      case 'quot': return '"';
      case 'apos': return "'";
      default: {
        const cp = e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
        try { return String.fromCodePoint(cp); } catch (x) { return m; }
      }
    }
  });
}

function parseXml(text) {
  const root = { kids: [] };
  const stack = [root];
  const re = /<!--[\s\S]*?-->|<\?[\s\S]*?\?>|<\/[^>]*>|<[^>]*>|[^<]+/g;
  let m;
  while ((m = re.exec(text)) !== null) {
    const t = m[0];
    const top = stack[stack.length - 1];
    if (t.startsWith('<!--')) top.kids.push({ cm: t });
    else if (t.startsWith('<?')) top.kids.push({ pi: t });
    else if (t.startsWith('</')) { if (stack.length > 1) stack.pop(); }
    else if (t.startsWith('<')) {
      const self = t.endsWith('/>');
      const inner = t.slice(1, self ? -2 : -1);
      const sp = inner.search(/\s/);
      const name = sp < 0 ? inner : inner.slice(0, sp);
      const attrs = [];
      const ar = /([^\s=]+)\s*=\s*"([^"]*)"/g;
      let a;
      const rest = sp < 0 ? '' : inner.slice(sp);
      while ((a = ar.exec(rest)) !== null) attrs.push([a[1], a[2]]);
      const node = { name, attrs, kids: [], self };
      top.kids.push(node);
      if (!self) stack.push(node);
    } else if (t.trim() !== '') top.kids.push({ tx: t });
  }
  return root.kids;
}

function openTag(node, line) {
  line.appendChild(el('span', 'tg', '<' + node.name));
  for (const [k, v] of node.attrs) {
    line.appendChild(document.createTextNode(' '));
    line.appendChild(el('span', 'an', k));
    line.appendChild(document.createTextNode('='));
    line.appendChild(el('span', 'av', '"' + decodeEntities(v) + '"'));
  }
  line.appendChild(el('span', 'tg', node.self ? '/>' : '>'));
}

function renderNodes(nodes, parent) {
  for (let i = 0; i < nodes.length; i++) {
    const n = nodes[i];
    if (n.cm !== undefined) { const d = el('div', 'ln'); d.appendChild(el('span', 'cm', n.cm)); parent.appendChild(d); continue; }
    if (n.pi !== undefined) { const d = el('div', 'ln'); d.appendChild(el('span', 'cm', n.pi)); parent.appendChild(d); continue; }
    if (n.tx !== undefined) { const d = el('div', 'ln'); d.appendChild(el('span', 'tx', decodeEntities(n.tx))); parent.appendChild(d); continue; }
    const box = el('div', 'e');
    const line = el('div', 'ln');
    box.appendChild(line);
    const simple = n.kids.every(k => k.tx !== undefined);
    if (n.self || simple) {
      openTag(n, line);
      if (!n.self) {
        for (const k of n.kids) line.appendChild(el('span', 'tx', decodeEntities(k.tx)));
        line.appendChild(el('span', 'tg', '</' + n.name + '>'));
      }
      /* A Status comment right after its element stays on the same line. */
      const next = nodes[i + 1];
      if (next && next.cm !== undefined && /^<!-- \d+ = /.test(next.cm)) {
        line.appendChild(document.createTextNode(' '));
        line.appendChild(el('span', 'cm', next.cm));
        i++;
      }
    } else {
      const tog = el('span', 'tog', '\u25BE');
      tog.title = 'collapse / expand';
      tog.addEventListener('click', () => {
        box.classList.toggle('closed');
        tog.textContent = box.classList.contains('closed') ? '\u25B8' : '\u25BE';
      });
      line.appendChild(tog);
      openTag(n, line);
      line.appendChild(el('span', 'dots'));
      const kids = el('div', 'n');
      renderNodes(n.kids, kids);
      box.appendChild(kids);
      const end = el('div', 'ln end');
      end.appendChild(el('span', 'tg', '</' + n.name + '>'));
      box.appendChild(end);
    }
    parent.appendChild(box);
  }
}

function xmlView(text) {
  if (text.length > 2 * 1024 * 1024) return el('pre', null, text); /* too big for a tree */
  const d = el('div', 'xml');
  renderNodes(parseXml(text), d);
  return d;
}

/* ---- detail ---------------------------------------------------------------------------- */

function kvTable(pairs) {
  const t = el('table', 'kv');
  for (const [k, v] of pairs) {
    if (v === null || v === undefined || v === '') continue;
    const tr = el('tr');
    tr.appendChild(el('td', null, k));
    tr.appendChild(el('td', null, v));
    t.appendChild(tr);
  }
  return t;
}

function findingsBox(list) {
  const d = el('div');
  if (!list || list.length === 0) { d.appendChild(el('p', 'hint', 'No findings.')); return d; }
  d.className = 'findings';
  for (const f of list) {
    const b = el('div', 'finding ' + f.severity);
    const h = el('div');
    h.appendChild(el('span', 'sevtag ' + f.severity, f.severity));
    h.appendChild(document.createTextNode(' '));
    h.appendChild(el('span', 'rule', f.rule));
    b.appendChild(h);
    b.appendChild(el('div', 'msg', f.message));
    if (f.next_step) b.appendChild(el('div', 'next', f.next_step));
    d.appendChild(b);
  }
  return d;
}

function pieceView(p, box, kind) {
  if (p.xml !== undefined) {
    box.appendChild(xmlView(p.xml));
    if (p.xml_cut) box.appendChild(el('div', 'note', 'XML cut at the display limit'));
    if (p.decode_error) box.appendChild(el('div', 'note', 'WBXML decode error: ' + p.decode_error));
  } else if (p.text !== undefined) {
    if (kind === 'xml' && /^\s*</.test(p.text)) box.appendChild(xmlView(p.text));
    else box.appendChild(el('pre', 'text', p.text));
    if (p.text_cut) box.appendChild(el('div', 'note', 'text cut at the display limit'));
  } else if (p.hex !== undefined) {
    box.appendChild(el('pre', 'hex', p.hex));
    if (p.hex_cut) box.appendChild(el('div', 'note', 'hex dump cut at the display limit'));
  }
}

function bodyView(b, box) {
  if (!b) return;
  if (b.absent) { box.appendChild(el('div', 'bodyinfo', 'body not recorded by this source')); return; }
  let info = (b.kind || 'body') + ', ' + fmtSize(b.bytes) + ' bytes on the wire';
  if (b.encoding) info += ', ' + b.encoding + ', ' + fmtSize(b.decoded) + ' decoded';
  if (b.truncated) info += ', truncated';
  box.appendChild(el('div', 'bodyinfo', info));
  if (b.error) box.appendChild(el('div', 'note', 'body: ' + b.error));
  if (b.parts) {
    for (const p of b.parts) {
      box.appendChild(el('div', 'bodyinfo', 'multipart part ' + p.index + ' of ' + b.parts.length + ': ' + p.bytes + ' bytes'));
      pieceView(p, box, 'data');
    }
  } else {
    pieceView(b, box, b.kind);
  }
}

function headersTable(h) {
  const t = el('table', 'hdrs');
  for (const [k, v] of h) {
    const tr = el('tr');
    tr.appendChild(el('td', null, k));
    tr.appendChild(el('td', null, v));
    t.appendChild(tr);
  }
  return t;
}

function messageBox(title, m, isReq) {
  const d = el('div', isReq ? 'req' : 'resp');
  d.appendChild(el('h3', null, title));
  if (!m) { d.appendChild(el('p', 'hint', isReq ? 'no request' : 'no response')); return d; }
  d.appendChild(el('div', 'startline', isReq ? (m.method || '?') + ' ' + m.target + ' ' + m.version
    : m.version + ' ' + m.status + ' ' + (m.reason || '')));
  d.appendChild(headersTable(m.headers));
  if (isReq && m.eas_line) d.appendChild(el('div', 'easline', 'EAS: ' + m.eas_line));
  if (isReq && m.eas_error) d.appendChild(el('div', 'note', 'EAS query: ' + m.eas_error));
  if (!isReq) for (const n of m.notes || []) d.appendChild(el('div', 'note', n));
  const body = el('div', 'body');
  bodyView(m.body, body);
  d.appendChild(body);
  return d;
}

function rel(ms, base) { return ms === null || base === null ? null : '+' + (ms - base).toFixed(1) + ' ms (' + fmtIso(ms) + ')'; }

function renderDetail(d) {
  const box = $('detail');
  clear(box);
  const x = d.exchange;
  const h = el('h2', null, 'Exchange ' + d.n + (x.eas && x.eas.cmd ? ' \u2014 ' + x.eas.cmd : ''));
  box.appendChild(h);
  box.appendChild(el('div', 'summaryline', [fmtIso(x.time !== null ? Date.parse(x.time) : null), d.source,
    d.host, x.status !== null ? 'HTTP ' + x.status : 'no response', fmtDur(x.duration_ms),
    x.error ? 'failed: ' + x.error.stage : ''].filter(Boolean).join(' \u00b7 ')));
  if (x.findings && x.findings.length) box.appendChild(findingsBox(x.findings));
  const cols = el('div', 'cols');
  cols.appendChild(messageBox('Request', d.request, true));
  cols.appendChild(messageBox('Response', d.response, false));
  box.appendChild(cols);
  const over = el('div', 'over');
  const left = el('div');
  left.appendChild(el('h3', null, 'Overview'));
  const t = d.timings;
  const base = t.req_begin !== null ? t.req_begin : t.connect;
  left.appendChild(kvTable([
    ['source', d.source + (d.seen ? ' (seen by ' + fmtSeen(d.seen) + ')' : '')],
    ['file', d.file], ['record in file', d.record], ['client', d.client], ['server', d.server],
    ['host', d.host + (d.port ? ':' + d.port : '')], ['scheme', d.scheme],
    ['HTTP status', x.status], ['duration', fmtDur(x.duration_ms)],
    ['request bytes', x.request_bytes], ['response bytes', x.response_bytes],
    ['EAS', x.eas ? [x.eas.cmd, 'user=' + (x.eas.user || '-'), 'device=' + (x.eas.device_id || '-'),
      x.eas.device_type ? 'type=' + x.eas.device_type : '', x.eas.protocol ? 'v' + x.eas.protocol : '',
      x.eas.status && x.eas.status.length ? 'Status ' + x.eas.status.join(',') : ''].filter(Boolean).join(' ') : null],
    ['failed', x.error ? x.error.stage + ': ' + x.error.message : null],
    ['body decode', d.body_error],
  ]));
  left.appendChild(el('h3', null, 'Timings'));
  left.appendChild(kvTable([
    ['connect', t.connect !== null ? fmtIso(t.connect) : null],
    ['request begin', t.req_begin !== null ? fmtIso(t.req_begin) : null],
    ['request end', rel(t.req_end, base)], ['response begin', rel(t.resp_begin, base)],
    ['response end', rel(t.resp_end, base)],
  ]));
  over.appendChild(left);
  const right = el('div');
  if (d.tls) {
    right.appendChild(el('h3', null, 'TLS'));
    right.appendChild(kvTable([
      ['mode', d.tls.intercepted ? 'intercepted' : 'tunnelled'], ['SNI', d.tls.sni],
      ['client TLS', d.tls.client_version], ['server TLS', d.tls.upstream_version],
      ['cipher', d.tls.cipher], ['ALPN', d.tls.alpn],
      ['verification', d.tls.insecure ? 'OFF (--insecure-upstream)' : null],
    ]));
    if (d.tls.subject || d.tls.sha256 || d.tls.verify_error) right.appendChild(el('h3', null, 'Upstream certificate'));
    right.appendChild(kvTable([
      ['subject', d.tls.subject], ['issuer', d.tls.issuer], ['not before', d.tls.not_before],
      ['not after', d.tls.not_after], ['SHA-256', d.tls.sha256], ['verify error', d.tls.verify_error],
    ]));
  }
  if (d.meta && d.meta.length) {
    right.appendChild(el('h3', null, 'Source fields'));
    right.appendChild(kvTable(d.meta));
  }
  over.appendChild(right);
  box.appendChild(over);
}

/* ---- the grid --------------------------------------------------------------------------- */

const COLS = [
  ['n', '#', r => r.n, 'num'],
  ['t', 'time (UTC)', r => fmtTime(r.t)],
  ['dev', 'device', r => r.dev],
  ['user', 'user', r => r.user],
  ['cmd', 'command', r => r.cmd],
  ['folder', 'folder', r => r.folder],
  ['http', 'HTTP', r => r.http !== null ? r.http : (r.err ? 'ERR' : '-'), 'num'],
  ['eas', 'EAS status', r => r.eas !== null ? r.eas + '=' + (r.easName || '?') : '-'],
  ['req', 'req', r => fmtSize(r.req), 'r'],
  ['resp', 'resp', r => fmtSize(r.resp), 'r'],
  ['dur', 'duration', r => fmtDur(r.dur), 'r'],
  ['seen', 'seen by', r => fmtSeen(r.seen)],
  ['sev', 'findings', r => r.rules || ''],
];

const state = {
  api: null, filter: {}, sort: '', dir: 'asc', matched: 0, total: 0, pages: new Map(),
  gen: 0, sel: -1, selN: null, version: null, view: 'grid', openN: null,
};

function resetGrid() {
  state.gen++;
  state.pages = new Map();
  state.loading = new Set();
  loadPage(0).then(() => drawGrid());
}

async function loadPage(p) {
  const gen = state.gen;
  if (state.pages.has(p) || state.loading.has(p)) return;
  state.loading.add(p);
  try {
    const res = await state.api.rows(Object.assign({}, state.filter,
      { sort: state.sort, dir: state.dir, offset: p * PAGE, limit: PAGE }));
    if (gen !== state.gen) return;
    state.pages.set(p, res.rows);
    if (res.matched < state.matched) state.sel = Math.min(state.sel, res.matched - 1);
    state.matched = res.matched;
    state.total = res.total;
    $('matched').textContent = res.matched === res.total ? res.total + ' exchanges'
      : res.matched + ' of ' + res.total + ' exchanges';
    $('grid-space').style.height = (res.matched * ROW_H) + 'px';
  } catch (e) {
    $('matched').textContent = 'error: ' + e.message;
  } finally {
    state.loading.delete(p);
  }
}

function rowAt(i) {
  const pg = state.pages.get(Math.floor(i / PAGE));
  return pg ? pg[i % PAGE] : undefined;
}

function drawGrid() {
  const body = $('grid-body');
  const space = $('grid-space');
  const first = Math.max(0, Math.floor(body.scrollTop / ROW_H) - 5);
  const last = Math.min(state.matched, Math.ceil((body.scrollTop + body.clientHeight) / ROW_H) + 5);
  const want = new Set();
  for (let i = first; i < last; i++) want.add(Math.floor(i / PAGE));
  for (const p of want) if (!state.pages.has(p) && !state.loading.has(p)) loadPage(p).then(drawGrid);
  clear(space);
  space.style.height = (state.matched * ROW_H) + 'px';
  for (let i = first; i < last; i++) {
    const r = rowAt(i);
    if (!r) continue;
    const d = el('div', 'row' + (r.sev >= 0 ? ' sev-' + r.sev : '') + (i === state.sel ? ' sel' : ''));
    d.style.top = (i * ROW_H) + 'px';
    d.dataset.i = i;
    d.dataset.n = r.n;
    for (const c of COLS) d.appendChild(el('span', c[3] || null, c[2](r)));
    space.appendChild(d);
  }
  if (state.matched === 0) space.appendChild(el('div', 'empty', 'No exchange matches.'));
}

function drawHead() {
  const h = $('grid-head');
  clear(h);
  for (const c of COLS) {
    const s = el('span', (c[0] === state.sort ? 'sorted' + (state.dir === 'desc' ? ' desc' : '') : '') + (c[3] ? ' ' + c[3] : ''), c[1]);
    s.dataset.col = c[0];
    s.title = 'sort by ' + c[1];
    h.appendChild(s);
  }
}

function select(i, scroll) {
  if (state.matched === 0) return;
  i = Math.max(0, Math.min(state.matched - 1, i));
  state.sel = i;
  const body = $('grid-body');
  if (scroll) {
    const top = i * ROW_H;
    if (top < body.scrollTop) body.scrollTop = top;
    else if (top + ROW_H > body.scrollTop + body.clientHeight) body.scrollTop = top + ROW_H - body.clientHeight;
  }
  drawGrid();
}

async function openExchange(n) {
  state.openN = n;
  try {
    const d = await state.api.exchange(n);
    if (state.openN !== n) return;
    renderDetail(d);
    $('detail').scrollTop = 0;
  } catch (e) {
    const box = $('detail');
    clear(box);
    box.appendChild(el('p', 'hint', 'Exchange ' + n + ': ' + e.message));
  }
}

function openSelected() {
  const r = rowAt(state.sel);
  if (r) location.hash = '#/exchange/' + r.n;
}

/* ---- devices and findings views ------------------------------------------------------- */

/* route() may run again while a view waits for its data (a hash change, a live update): only
 * the latest call draws, so a view is never drawn twice into its box. */
const viewCalls = { devices: 0, findings: 0 };

async function showDevices() {
  const box = $('view-devices');
  const call = ++viewCalls.devices;
  const d = await state.api.devices();
  if (call !== viewCalls.devices) return;
  clear(box);
  box.appendChild(el('h2', null, 'Devices (' + d.devices.length + ')'));
  const t = el('table', 'list');
  const hr = el('tr');
  for (const h of ['device', 'user', 'type', 'requests', 'errors', 'warnings', 'HTTP errors', 'max/min', 'commands', 'findings (rules)'])
    hr.appendChild(el('th', null, h));
  t.appendChild(hr);
  for (const v of d.devices) {
    const tr = el('tr');
    const td = el('td');
    const a = el('a', null, v.device);
    a.href = '#/';
    a.addEventListener('click', (ev) => { ev.preventDefault(); setFilter({ device: v.device }); location.hash = '#/'; });
    td.appendChild(a);
    tr.appendChild(td);
    tr.appendChild(el('td', null, v.user || '-'));
    tr.appendChild(el('td', null, v.type || '-'));
    for (const k of ['requests', 'errors', 'warnings', 'http_errors', 'max_per_minute']) tr.appendChild(el('td', 'num', v[k]));
    tr.appendChild(el('td', null, Object.entries(v.commands).map(([k, n]) => k + ' ' + n).join(', ')));
    tr.appendChild(el('td', null, v.rules.join(', ')));
    t.appendChild(tr);
  }
  box.appendChild(t);
}

async function showFindings() {
  const box = $('view-findings');
  const call = ++viewCalls.findings;
  const d = await state.api.findings();
  if (call !== viewCalls.findings) return;
  clear(box);
  box.appendChild(el('h2', null, 'Findings by rule (' + d.rules.length + ' rules)'));
  const t = el('table', 'list');
  const hr = el('tr');
  for (const h of ['rule', 'severity', 'count', 'devices', 'first message and next step', 'exchanges'])
    hr.appendChild(el('th', null, h));
  t.appendChild(hr);
  const order = { error: 0, warning: 1, info: 2 };
  const rules = d.rules.slice().sort((a, b) => order[a.severity] - order[b.severity] || b.count - a.count);
  for (const r of rules) {
    const tr = el('tr');
    tr.dataset.rule = r.rule;
    tr.appendChild(el('td', 'rule', r.rule));
    const sv = el('td');
    sv.appendChild(el('span', 'sevtag ' + r.severity, r.severity));
    tr.appendChild(sv);
    tr.appendChild(el('td', 'num', r.count));
    tr.appendChild(el('td', null, r.devices.join(', ')));
    const m = el('td');
    m.appendChild(el('div', null, r.message));
    if (r.next_step) m.appendChild(el('div', 'finding next', r.next_step));
    tr.appendChild(m);
    const ex = el('td', 'exlinks');
    for (const n of r.exchanges.slice(0, 40)) {
      const a = el('a', null, '#' + n);
      a.href = '#/exchange/' + n;
      ex.appendChild(a);
    }
    if (r.exchanges.length > 40) ex.appendChild(el('span', 'hint', '+' + (r.exchanges.length - 40) + ' more'));
    tr.appendChild(ex);
    t.appendChild(tr);
  }
  box.appendChild(t);
  if (d.summary && d.summary.length) {
    box.appendChild(el('h2', null, 'Over the whole input'));
    box.appendChild(findingsBox(d.summary));
  }
}

/* ---- summary, live updates, pending long polls --------------------------------------- */

function drawSummary(s) {
  state.summaryAt = Date.now();
  state.summary = s;
  document.body.dataset.finished = s.finished ? '1' : '';
  $('status').textContent = (!s.finished && !s.live ? 'reading\u2026 ' : '') + s.exchanges + ' exchanges, ' + s.errors + ' errors, ' + s.warnings +
    ' warnings, ' + s.devices + ' devices' + (s.dropped ? ' (' + s.dropped + ' oldest dropped)' : '');
  $('live').hidden = !s.live;
  drawPending();
}

function drawPending() {
  const s = state.summary;
  const box = $('pending');
  if (!s || !s.pending || s.pending.length === 0) { box.hidden = true; clear(box); return; }
  box.hidden = false;
  clear(box);
  box.appendChild(el('b', null, 'in flight: '));
  const now = s.now + (Date.now() - state.summaryAt);
  for (const p of s.pending) {
    const d = el('span', 'p');
    d.dataset.key = p.key;
    const held = p.t !== null ? (now - p.t) / 1000 : 0;
    d.appendChild(document.createTextNode((p.cmd || '?') + ' ' + (p.dev || '') + ' ' + (p.host || '') + ' held ' + Math.floor(held) + 's'));
    if (p.heartbeat !== null) {
      const left = Math.max(0, p.heartbeat - held);
      d.appendChild(document.createTextNode(', heartbeat ' + p.heartbeat + 's: '));
      d.appendChild(el('span', 'cd', Math.ceil(left) + 's left'));
    }
    box.appendChild(d);
  }
}

async function liveLoop() {
  let v = state.summary ? state.summary.version : 0;
  for (;;) {
    try {
      const s = await state.api.wait(v);
      if (s.version !== v) {
        v = s.version;
        drawSummary(s);
        state.gen++;
        state.pages = new Map();
        state.loading = new Set();
        await loadPage(Math.floor(($('grid-body').scrollTop / ROW_H) / PAGE));
        drawGrid();
        if (!s.live && s.finished) return; /* the input is read whole: nothing more comes */
        if (!s.live) await new Promise(r => setTimeout(r, 250)); /* reading: refresh 4 times a second */
      }
    } catch (e) {
      $('matched').textContent = 'live updates stopped: ' + e.message;
      await new Promise(r => setTimeout(r, 2000));
    }
  }
}

/* ---- filters, routing, keys ------------------------------------------------------------ */

function readFilter() {
  const f = {};
  const form = $('filters');
  for (const k of ['device', 'user', 'cmd', 'host', 'since', 'until', 'find']) {
    const v = form.elements[k].value.trim();
    if (v) f[k] = v;
  }
  if (form.elements.errors.checked) f.errors = true;
  return f;
}

function setFilter(f) {
  const form = $('filters');
  for (const k of ['device', 'user', 'cmd', 'host', 'since', 'until', 'find']) form.elements[k].value = f[k] || '';
  form.elements.errors.checked = !!f.errors;
  state.filter = readFilter();
  state.sel = -1;
  $('grid-body').scrollTop = 0;
  resetGrid();
}

function route() {
  const h = location.hash || '#/';
  let view = 'grid';
  const m = /^#\/exchange\/(\d+)$/.exec(h);
  if (h === '#/devices') view = 'devices';
  else if (h === '#/findings') view = 'findings';
  for (const v of ['grid', 'devices', 'findings']) {
    $('view-' + v).hidden = v !== view;
    $('nav-' + v).classList.toggle('on', v === view);
  }
  $('filters').hidden = view !== 'grid';
  state.view = view;
  if (view === 'devices') showDevices().catch(e => $('view-devices').appendChild(el('p', 'hint', e.message)));
  if (view === 'findings') showFindings().catch(e => $('view-findings').appendChild(el('p', 'hint', e.message)));
  if (view === 'grid') drawGrid();
  if (m) openExchange(Number(m[1]));
}

function onKey(ev) {
  const tag = ev.target && ev.target.tagName;
  if (tag === 'INPUT' || tag === 'TEXTAREA') {
    if (ev.key === 'Escape') ev.target.blur();
    return;
  }
  if (state.view !== 'grid') return;
  if (ev.key === '/') { ev.preventDefault(); $('filters').elements.find.focus(); return; }
  if (ev.key === 'ArrowDown' || ev.key === 'j') { ev.preventDefault(); select(state.sel + 1, true); }
  else if (ev.key === 'ArrowUp' || ev.key === 'k') { ev.preventDefault(); select(state.sel - 1, true); }
  else if (ev.key === 'PageDown') { ev.preventDefault(); select(state.sel + Math.floor($('grid-body').clientHeight / ROW_H), true); }
  else if (ev.key === 'PageUp') { ev.preventDefault(); select(state.sel - Math.floor($('grid-body').clientHeight / ROW_H), true); }
  else if (ev.key === 'Home') { ev.preventDefault(); select(0, true); }
  else if (ev.key === 'End') { ev.preventDefault(); select(state.matched - 1, true); }
  else if (ev.key === 'Enter') { ev.preventDefault(); openSelected(); }
}

async function main() {
  const data = $('et-data');
  if (data) {
    const d = JSON.parse(data.textContent);
    state.api = new FileApi(d);
    if (d.title) document.title = 'eastrace: ' + d.title;
  } else {
    state.api = new HttpApi();
  }
  drawHead();
  $('grid-head').addEventListener('click', (ev) => {
    const c = ev.target.dataset && ev.target.dataset.col;
    if (!c) return;
    if (state.sort === c) state.dir = state.dir === 'asc' ? 'desc' : 'asc';
    else { state.sort = c; state.dir = 'asc'; }
    state.sel = -1;
    drawHead();
    resetGrid();
  });
  $('grid-body').addEventListener('scroll', () => drawGrid());
  $('grid-body').addEventListener('click', (ev) => {
    const row = ev.target.closest('.row');
    if (!row) return;
    state.sel = Number(row.dataset.i);
    drawGrid();
    location.hash = '#/exchange/' + row.dataset.n;
    $('grid').focus();
  });
  $('filters').addEventListener('submit', (ev) => { ev.preventDefault(); setFilter(readFilter()); $('grid').focus(); });
  $('clear').addEventListener('click', () => setFilter({}));
  document.addEventListener('keydown', onKey);
  window.addEventListener('hashchange', route);
  window.addEventListener('resize', () => drawGrid());
  state.loading = new Set();
  const s = await state.api.summary();
  drawSummary(s);
  await loadPage(0);
  route();
  document.body.dataset.ready = '1';
  setInterval(drawPending, 1000);
  if ((s.live || !s.finished) && !data) liveLoop();
}

main().catch(e => { document.body.dataset.ready = 'error'; $('matched').textContent = 'error: ' + e.message; });
