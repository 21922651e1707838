'use strict';
/*
 * The session browser in real headless Chromium (tests/cli/test_web.sh runs this):
 * `eastrace web` over a generated capture and a hostile HAR, `eastrace export --html`, and
 * the server's refusals, each checked against what the CLI itself prints (replay --json,
 * show) for the same input. Prints "ok - ..." / "FAIL - ..." lines and "N passed, N failed".
 *
 * Environment: ET_EASTRACE (the binary), ET_BENCH_REPLAY (the capture generator),
 * ET_WEB_SHOTS (a directory: write screenshots of each view there),
 * ET_WEB_LOADTIME ("10000,100000": measure the page's load time at those sizes).
 */
const { spawn, execFileSync } = require('child_process');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const { Browser } = require('./cdp');

const E = process.env.ET_EASTRACE;
const GEN = process.env.ET_BENCH_REPLAY;
const SHOTS = process.env.ET_WEB_SHOTS || '';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'et-web-test-'));
let pass = 0, fail = 0;
const procs = [];

function ok(name, cond, detail) {
  if (cond) { pass++; console.log('ok - ' + name); }
  else { fail++; console.log('FAIL - ' + name + (detail !== undefined ? ': ' + detail : '')); }
}
function eqv(name, got, want) { ok(name, JSON.stringify(got) === JSON.stringify(want), 'got ' + JSON.stringify(got) + ', wanted ' + JSON.stringify(want)); }

function cli(args, opts = {}) {
  try {
    return execFileSync(E, args, { encoding: 'utf8', maxBuffer: 1 << 30, ...opts });
  } catch (e) {
    if (e.status === 1 && e.stdout !== undefined) return e.stdout; /* findings: exit 1 */
    throw e;
  }
}
function replayJson(files, filters = []) {
  const lines = cli(['replay', '--json', '--fail-on', 'never', ...filters, ...files]).trim().split('\n').map(l => JSON.parse(l));
  return { rows: lines.filter(l => !l.summary), summary: lines.find(l => l.summary) };
}

function startWeb(args) {
  return new Promise((resolve, reject) => {
    const p = spawn(E, ['web', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(p);
    let out = '', err = '';
    const t = setTimeout(() => reject(new Error('eastrace web printed no URL: ' + err)), 120000);
    p.stdout.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(t);
        const url = out.slice(0, nl);
        const m = /^http:\/\/([^/]+):(\d+)\/\?token=([0-9a-f]+)$/.exec(url);
        if (!m) reject(new Error('first line is not the URL: ' + url));
        else resolve({ proc: p, url, host: m[1], port: Number(m[2]), token: m[3], stderr: () => err });
      }
    });
    p.stderr.on('data', (d) => { err += d; });
    p.on('exit', (c) => { clearTimeout(t); reject(new Error('eastrace web exited ' + c + ': ' + err)); });
  });
}

function rawGet(port, pathq, headers) {
  return new Promise((resolve, reject) => {
    const h = Object.assign({}, headers);
    delete h.method;
    const req = http.request({ host: '127.0.0.1', port, path: pathq, method: headers.method || 'GET', headers: h, setHost: false, agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/* A HAR whose values try to become markup or script. */
function hostileHar(file) {
  const evil = '<img src=x onerror="window.pwned=1">';
  const entry = (i, extra) => Object.assign({
    startedDateTime: '2024-05-01T10:00:0' + i + '.000Z', time: 25,
    request: { method: 'POST', url: 'https://mail.example.com/Microsoft-Server-ActiveSync?Cmd=Sync&User=u' + i + '&DeviceId=' + encodeURIComponent(evil) + '&DeviceType=iPhone',
      httpVersion: 'HTTP/1.1', cookies: [], headers: [
        { name: 'Host', value: 'mail.example.com' },
        { name: 'User-Agent', value: '<script>window.pwned=2</script>' },
        { name: 'Authorization', value: 'Basic ' + Buffer.from('alice:s3cret-pw').toString('base64') },
        { name: 'Cookie', value: 'session=topsecretcookie' }],
      queryString: [], headersSize: -1, bodySize: 0 },
    response: { status: 200, statusText: 'OK</title><script>window.pwned=3</script>', httpVersion: 'HTTP/1.1', cookies: [],
      headers: [{ name: 'Content-Type', value: 'text/plain' }, { name: 'X-Evil', value: '"><svg onload="window.pwned=4">' }],
      content: { size: 60, mimeType: 'text/plain', text: '</script><script>window.pwned=5</script> & \u2028 end' },
      redirectURL: '', headersSize: -1, bodySize: 60 },
    cache: {}, timings: { send: 1, wait: 20, receive: 4 } }, extra || {});
  fs.writeFileSync(file, JSON.stringify({ log: { version: '1.2', creator: { name: 'test', version: '1' }, entries: [entry(1), entry(2)] } }));
}

async function pageReady(page) {
  await page.waitFor("document.body && document.body.dataset.ready === '1' && document.body.dataset.finished === '1' && document.getElementById('grid-space').children.length > 0 || document.body.dataset.ready === 'error'", 300000);
  return page.eval('document.body.dataset.ready');
}

async function submitFilter(page, f) {
  await page.eval(`(() => { const fm = document.getElementById('filters');
    for (const k of ['device','user','cmd','host','since','until','find']) fm.elements[k].value = ${JSON.stringify(f)}[k] || '';
    fm.elements.errors.checked = ${!!f.errors};
    document.getElementById('matched').textContent = '';
    fm.requestSubmit(); return 1; })()`);
  return page.waitFor("(t => t && /exchanges|error/.test(t) ? t : '')(document.getElementById('matched').textContent)");
}

/* The numbers of every row the grid shows after filter f (few rows: all are drawn). */
async function filteredRows(page, f) {
  const t = await submitFilter(page, f);
  return matchedCount(t) > 0 ? page.eval("Array.from(document.querySelectorAll('#grid-space .row')).map(r => Number(r.dataset.n))") : [];
}

/* export --html of files to tmp/name, opened from the file. */
async function exportPage(browser, files, name, label) {
  const out = path.join(tmp, name);
  cli(['export', ...files, '--html', out]);
  const page = await browser.newPage();
  await page.goto('file://' + out);
  ok(label + ': the export --html page loads', (await pageReady(page)) === '1');
  return page;
}

function matchedCount(text) {
  const m = /^(\d+)( of (\d+))? exchanges$/.exec(text);
  return m ? Number(m[1]) : -1;
}

/* Text values of the response XML as the page shows them, and as `eastrace show` does. */
async function pageXmlTexts(page, which) {
  return page.eval(`Array.from(document.querySelectorAll('#detail .${which} .xml .tx')).map(e => e.textContent)`);
}
function showXmlTexts(files, n, which) {
  const out = cli(['show', ...files, String(n)]);
  const part = which === 'resp' ? out.split('---- response ----')[1] : out.split('---- request ----')[1].split('---- response ----')[0];
  const texts = [];
  const re = />([^<>]+)</g;
  let m;
  const xml = part.slice(part.indexOf('<?xml'));
  while ((m = re.exec(xml)) !== null) if (m[1].trim() !== '') texts.push(m[1].replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&'));
  return texts;
}

async function testServer(browser, cap) {
  const want = replayJson([cap]);
  const N = want.rows.length;
  const web = await startWeb([cap]);
  ok('URL on the first line, on loopback, with a 32-digit token', web.host === '127.0.0.1' && web.token.length === 32);
  const page = await browser.newPage();
  const t0 = Date.now();
  await page.goto(web.url);
  ok('page loads', (await pageReady(page)) === '1', page.consoleErrors.join('; '));
  console.log('# load of ' + N + ' exchanges: ' + (Date.now() - t0) + ' ms');
  eqv('token left the address bar (cookie instead)', await page.eval('location.href'), 'http://127.0.0.1:' + web.port + '/');
  eqv('row count is replay\'s', matchedCount(await page.eval("document.getElementById('matched').textContent")), N);
  const firstRows = await page.eval("Array.from(document.querySelectorAll('#grid-space .row')).map(r => Number(r.dataset.n))");
  eqv('first rows numbered as replay numbers them', firstRows.slice(0, 5), want.rows.slice(0, 5).map(r => r.n));
  /* Every row's command and HTTP status against replay's (page through the grid's API). */
  const all = await page.eval(`(async () => { let out = []; for (let o = 0; ; o += 1000) {
      const r = await fetch('/api/rows?limit=1000&offset=' + o).then(r => r.json());
      out = out.concat(r.rows.map(x => [x.n, x.fcmd || x.cmd, x.http, x.sev])); if (r.rows.length < 1000) return out; } })()`);
  const sevOf = (fs) => fs.reduce((m, f) => Math.max(m, ['info', 'warning', 'error'].indexOf(f.severity)), -1);
  eqv('every row: number, command, HTTP status, worst finding as replay --json', all,
    want.rows.map(r => [r.n, r.eas ? r.eas.cmd : r.method, r.status, sevOf(r.findings)]));
  /* Details by number, whatever the order (a late Ping has a small record number). */
  const ns = want.rows.map(r => r.n);
  const det = await page.eval(`Promise.all(${JSON.stringify(ns)}.map(n => fetch('/api/exchange/' + n).then(r => r.json()).then(d => [d.n, d.exchange.eas ? d.exchange.eas.cmd : null])))`);
  eqv('details by number: every exchange', det, want.rows.map(r => [r.n, r.eas ? r.eas.cmd : null]));
  ok('the timeline is not in record order here (so the lookup is tested)', ns.some((n, i) => i > 0 && n < ns[i - 1]));
  /* Scroll to the end: the virtual grid shows the last exchange. */
  await page.eval("document.getElementById('grid-body').scrollTop = 1e9; document.getElementById('grid-body').dispatchEvent(new Event('scroll')); 1");
  const lastN = await page.waitFor(`(() => { const r = Array.from(document.querySelectorAll('#grid-space .row')).map(r => Number(r.dataset.n)); return r.includes(${want.rows[N - 1].n}) ? r[r.length - 1] : 0; })()`);
  eqv('scrolled to the end: the last row is the timeline\'s last exchange', lastN, want.rows[N - 1].n);
  await page.eval("document.getElementById('grid-body').scrollTop = 0; document.getElementById('grid-body').dispatchEvent(new Event('scroll')); 1");
  if (SHOTS) await page.screenshot(path.join(SHOTS, 'grid.png'));

  /* Open an exchange with XML on both sides (a Sync with a response body). */
  const sync = want.rows.find(r => r.eas && r.eas.cmd === 'Sync' && r.response_bytes > 200 && r.request_bytes > 20 && r.status === 200);
  await page.eval(`location.hash = '#/exchange/${sync.n}'; 1`);
  await page.waitFor(`(document.querySelector('#detail h2') || {}).textContent === 'Exchange ${sync.n} \u2014 Sync'`);
  const respTexts = await pageXmlTexts(page, 'resp');
  const wantTexts = showXmlTexts([cap], sync.n, 'resp');
  const di = respTexts.findIndex((t, i) => t !== wantTexts[i]);
  ok('response XML text values equal eastrace show\'s', respTexts.length > 3 && JSON.stringify(respTexts) === JSON.stringify(wantTexts), 'lengths ' + respTexts.length + '/' + wantTexts.length + ', first difference at ' + di + ': ' + JSON.stringify(respTexts.slice(di, di + 3)) + ' vs ' + JSON.stringify(wantTexts.slice(di, di + 3)));
  eqv('request XML text values equal eastrace show\'s', await pageXmlTexts(page, 'req'), showXmlTexts([cap], sync.n, 'req'));
  const tags = await page.eval("Array.from(document.querySelectorAll('#detail .resp .xml .tg')).map(e => e.textContent).slice(0, 3)");
  ok('XML elements coloured as tags', tags.length === 3 && tags[0].startsWith('<'), JSON.stringify(tags));
  const statusComment = await page.eval("Array.from(document.querySelectorAll('#detail .resp .xml .cm')).map(e => e.textContent).find(t => / = /.test(t)) || ''");
  ok('Status values named (comment as in show)', /^<!-- \d+ = \w+/.test(statusComment), statusComment);
  const easLine = await page.eval("(document.querySelector('#detail .easline') || {}).textContent || ''");
  ok('decoded EAS request line shown', easLine.startsWith('EAS: Sync user=') && easLine.includes('device=' + sync.eas.device_id), easLine);
  /* Collapse the root element and expand it again. */
  const visibleBefore = await page.eval("document.querySelector('#detail .resp .xml .n').offsetParent !== null");
  await page.eval("document.querySelector('#detail .resp .xml .tog').click(); 1");
  const visibleAfter = await page.eval("document.querySelector('#detail .resp .xml .n').offsetParent !== null");
  ok('XML collapses', visibleBefore === true && visibleAfter === false);
  await page.eval("document.querySelector('#detail .resp .xml .tog').click(); 1");
  if (SHOTS) await page.screenshot(path.join(SHOTS, 'exchange.png'));

  /* An exchange with a finding shows it with its next step. */
  const bad = want.rows.find(r => r.findings.length > 0);
  if (bad) {
    await page.eval(`location.hash = '#/exchange/${bad.n}'; 1`);
    await page.waitFor(`((document.querySelector('#detail h2') || {}).textContent || '').startsWith('Exchange ${bad.n}')`);
    const rules = await page.eval("Array.from(document.querySelectorAll('#detail .finding .rule')).map(e => e.textContent)");
    eqv('findings of an exchange as replay\'s', rules, bad.findings.map(f => f.rule));
    ok('finding has its next step', (await page.eval("(document.querySelector('#detail .finding .next') || {}).textContent || ''")).length > 20);
  }

  /* Filters: the same counts as replay's options. */
  const dev = want.rows[0].eas.device_id;
  const cases = [
    [{ device: dev }, ['--device', dev]],
    [{ cmd: 'Ping' }, ['--cmd', 'Ping']],
    [{ cmd: 'sync', errors: true }, ['--cmd', 'sync', '--errors']],
    [{ find: 'Calendar' }, ['--find', 'Calendar']],
    [{ find: 'Status>3<' }, ['--find', 'Status>3<']],
    [{ user: want.rows[3].eas.user, cmd: want.rows[3].eas.cmd }, ['--user', want.rows[3].eas.user, '--cmd', want.rows[3].eas.cmd]],
    [{ since: want.rows[Math.floor(N / 3)].time, until: want.rows[Math.floor(N / 2)].time }, ['--since', want.rows[Math.floor(N / 3)].time, '--until', want.rows[Math.floor(N / 2)].time]],
    [{ host: 'nowhere.example' }, ['--host', 'nowhere.example']],
  ];
  for (const [f, args] of cases) {
    const t = await submitFilter(page, f);
    const wantF = replayJson([cap], args).rows;
    eqv('filter ' + args.join(' ') + ': ' + wantF.length + ' rows as replay', matchedCount(t), wantF.length);
    if (wantF.length > 0) {
      const shown = await page.eval("Array.from(document.querySelectorAll('#grid-space .row')).map(r => Number(r.dataset.n)).slice(0, 10)");
      eqv('filter ' + args.join(' ') + ': same exchanges', shown, wantF.slice(0, 10).map(r => r.n));
    }
  }
  const badTime = await submitFilter(page, { since: 'yesterday' });
  ok('bad time is refused with the reason', /error: bad time/.test(badTime), badTime);
  await submitFilter(page, { cmd: 'Sync' });
  if (SHOTS) await page.screenshot(path.join(SHOTS, 'filtered.png'));
  await submitFilter(page, {});

  /* Sort by duration, descending, with two clicks on its heading. */
  await page.eval("document.querySelector('#grid-head [data-col=dur]').click(); 1");
  await page.waitFor("document.querySelector('#grid-head .sorted') && document.querySelector('#grid-head .sorted').dataset.col === 'dur'");
  await page.eval("document.querySelector('#grid-head [data-col=dur]').click(); 1");
  await page.waitFor("document.querySelector('#grid-head .sorted.desc') !== null");
  await new Promise(r => setTimeout(r, 300));
  const topN = await page.eval("Array.from(document.querySelectorAll('#grid-space .row')).map(r => Number(r.dataset.n)).slice(0, 5)");
  const byDur = want.rows.slice().sort((a, b) => (b.duration_ms - a.duration_ms) || (b.n - a.n)).slice(0, 5).map(r => r.n);
  eqv('sorted by duration, longest first', topN, byDur);
  await page.eval("document.querySelector('#grid-head [data-col=n]').click(); 1");
  await page.waitFor("document.querySelector('#grid-head .sorted').dataset.col === 'n' && Number(document.querySelector('#grid-space .row').dataset.n) === 1");
  const byN = await page.eval("Array.from(document.querySelectorAll('#grid-space .row')).map(r => Number(r.dataset.n)).slice(0, 5)");
  eqv('sorted by number', byN, want.rows.map(r => r.n).sort((a, b) => a - b).slice(0, 5));

  /* Keyboard: j j k j moves to the third row, Enter opens it, / focuses the filter. */
  await page.eval("document.getElementById('grid').focus(); 1");
  for (const k of ['j', 'j', 'k', 'j', 'j']) await page.key(k, 'Key' + k.toUpperCase(), k.charCodeAt(0) - 32, k);
  await page.key('Enter', 'Enter', 13, '\r');
  const shownN = await page.eval("Array.from(document.querySelectorAll('#grid-space .row')).map(r => Number(r.dataset.n))");
  const third = shownN[2];
  await page.waitFor(`location.hash === '#/exchange/${third}'`);
  ok('j/k move the selection, Enter opens it', (await page.eval("(document.querySelector('#detail h2') || {}).textContent || ''")).startsWith('Exchange ' + third) ||
    !!(await page.waitFor(`((document.querySelector('#detail h2') || {}).textContent || '').startsWith('Exchange ${third}')`)));
  await page.key('ArrowDown', 'ArrowDown', 40);
  await page.key('Enter', 'Enter', 13, '\r');
  await page.waitFor(`location.hash === '#/exchange/${shownN[3]}'`).then(() => ok('arrow down + Enter opens the next', true), (e) => ok('arrow down + Enter opens the next', false, e.message));
  await page.key('/', 'Slash', 191, '/');
  eqv('/ focuses the filter', await page.eval('document.activeElement && document.activeElement.name'), 'find');

  /* Devices view: every device replay's summary lists, with its numbers. */
  await page.eval("location.hash = '#/devices'; 1");
  await page.waitFor("document.querySelectorAll('#view-devices table tr').length > 1");
  const devRows = await page.eval("Array.from(document.querySelectorAll('#view-devices table tr')).slice(1).map(tr => Array.from(tr.children).map(td => td.textContent))");
  eqv('devices view: as many devices as replay', devRows.length, want.summary.devices.length);
  const d0 = want.summary.devices[0];
  const r0 = devRows.find(r => r[0] === d0.device);
  ok('devices view: requests, errors, warnings as replay', r0 && Number(r0[3]) === d0.requests && Number(r0[4]) === d0.errors && Number(r0[5]) === d0.warnings, JSON.stringify(r0) + ' vs ' + JSON.stringify(d0));
  if (SHOTS) await page.screenshot(path.join(SHOTS, 'devices.png'));

  /* Findings view: one row per rule with replay's counts. */
  await page.eval("location.hash = '#/findings'; 1");
  await page.waitFor("document.querySelectorAll('#view-findings table tr').length > 0");
  const ruleRows = await page.eval("Array.from(document.querySelectorAll('#view-findings table tr')).slice(1).map(tr => [tr.dataset.rule, Number(tr.children[2].textContent)])");
  const byRule = {};
  for (const r of want.rows) for (const f of r.findings) byRule[f.rule] = (byRule[f.rule] || 0) + 1;
  for (const f of want.summary.findings) byRule[f.rule] = (byRule[f.rule] || 0) + 1;
  eqv('findings view: rules and counts as replay', Object.fromEntries(ruleRows.sort()), Object.fromEntries(Object.entries(byRule).sort()));
  if (SHOTS) await page.screenshot(path.join(SHOTS, 'findings.png'));
  ok('no script error in the page', page.consoleErrors.length === 0, page.consoleErrors.join('; '));

  /* Security: the gate, from a plain client and from the browser. */
  const H = { Host: '127.0.0.1:' + web.port };
  let r = await rawGet(web.port, '/api/rows', H);
  eqv('no token: 401', r.status, 401);
  r = await rawGet(web.port, '/', H);
  eqv('no token on the page: 401', r.status, 401);
  r = await rawGet(web.port, '/api/rows?token=' + 'f'.repeat(32), H);
  eqv('wrong token: 403', r.status, 403);
  r = await rawGet(web.port, '/api/rows', Object.assign({ Cookie: 'et_token_' + web.port + '=' + '0'.repeat(32) }, H));
  eqv('wrong cookie: 403', r.status, 403);
  const C = Object.assign({ Cookie: 'et_token_' + web.port + '=' + web.token }, H);
  r = await rawGet(web.port, '/api/rows?limit=1', C);
  eqv('cookie: 200', r.status, 200);
  ok('strict CSP, no inline script', /default-src 'none'/.test(r.headers['content-security-policy']) && /script-src 'self'/.test(r.headers['content-security-policy']) && !/unsafe/.test(r.headers['content-security-policy']));
  eqv('nosniff', r.headers['x-content-type-options'], 'nosniff');
  ok('no CORS header', !Object.keys(r.headers).some(h => h.startsWith('access-control')));
  r = await rawGet(web.port, '/api/rows', { Host: 'rebind.example:' + web.port, Cookie: 'et_token_' + web.port + '=' + web.token });
  eqv('Host of another name (DNS rebinding) with the right token: refused', r.status, 421);
  r = await rawGet(web.port, '/api/rows', { Host: '127.0.0.1:1', Cookie: 'et_token_' + web.port + '=' + web.token });
  eqv('Host with another port: refused', r.status, 421);
  r = await rawGet(web.port, '/api/rows', {});
  eqv('no Host: refused', r.status, 421);
  r = await rawGet(web.port, '/api/rows', Object.assign({ Origin: 'http://evil.example' }, C));
  eqv('cross Origin with the cookie: 403', r.status, 403);
  r = await rawGet(web.port, '/api/rows', Object.assign({ 'Sec-Fetch-Site': 'cross-site' }, C));
  eqv('Sec-Fetch-Site cross-site: 403', r.status, 403);
  r = await rawGet(web.port, '/api/rows', Object.assign({ Origin: 'http://127.0.0.1:' + web.port }, C));
  eqv('own Origin: 200', r.status, 200);
  r = await rawGet(web.port, '/api/rows', Object.assign({ method: 'POST' }, C));
  eqv('POST: 405', r.status, 405);
  r = await rawGet(web.port, '/api/rows', Object.assign({ 'X-Big': 'a'.repeat(20000) }, C));
  eqv('oversized request: 431', r.status, 431);

  /* The browser itself: a page from another name resolving to us gets nothing. */
  const b2 = await Browser.launch(['--host-resolver-rules=MAP rebind.example 127.0.0.1']);
  const p2 = await b2.newPage();
  await p2.goto('http://rebind.example:' + web.port + '/?token=' + web.token);
  const txt = await p2.eval('document.body ? document.body.innerText : ""');
  ok('browser at a rebinding name: refused, no page', /DNS rebinding/.test(txt) && !(await p2.eval("!!document.getElementById('grid')")), txt);
  await p2.goto('http://127.0.0.1:' + web.port + '/');
  ok('browser without the token: 401 text, no page', /access token/.test(await p2.eval('document.body.innerText')) && !(await p2.eval("!!document.getElementById('grid')")));
  await b2.close();
  await page.close();
  web.proc.kill('SIGINT');
  return N;
}

async function testHostile(browser, har) {
  const web = await startWeb([har]);
  const page = await browser.newPage();
  await page.goto(web.url);
  ok('hostile HAR: page loads', (await pageReady(page)) === '1');
  const check = async (label) => {
    ok(label + ': no injected script ran', (await page.eval('window.pwned')) === undefined);
    ok(label + ': no injected element', (await page.eval("document.querySelectorAll('img, svg, iframe, object').length")) === 0);
  };
  const dev = await page.eval("document.querySelector('#grid-space .row span:nth-child(3)').textContent");
  eqv('device id with markup shown as text', dev, '<img src=x onerror="window.pwned=1">');
  await page.eval("location.hash = '#/exchange/1'; 1");
  await page.waitFor("((document.querySelector('#detail h2') || {}).textContent || '').startsWith('Exchange 1')");
  const detail = await page.eval("document.getElementById('detail').textContent");
  ok('header values with markup shown as text', detail.includes('<script>window.pwned=2</script>') && detail.includes('"><svg onload="window.pwned=4">'));
  ok('body with </script> shown as text', detail.includes('</script><script>window.pwned=5</script>'));
  ok('Authorization redacted, user kept', /Basic REDACTED|Basic \[redacted\]/i.test(detail) && !detail.includes('s3cret') && !detail.includes(Buffer.from('alice:s3cret-pw').toString('base64')), detail.slice(0, 400));
  ok('Cookie redacted', !detail.includes('topsecretcookie'));
  await check('server page');
  await page.eval("location.hash = '#/devices'; 1");
  await page.waitFor("document.querySelectorAll('#view-devices table tr').length > 1");
  await check('devices view');
  if (SHOTS) { await page.eval("location.hash = '#/exchange/1'; 1"); await new Promise(r => setTimeout(r, 300)); }
  await page.close();
  web.proc.kill('SIGINT');

  /* The same in the self-contained file. */
  const out = path.join(tmp, 'hostile.html');
  cli(['export', har, '--html', out]);
  const html = fs.readFileSync(out, 'utf8');
  ok('export: no raw </script> from the data', (html.match(/<\/script>/g) || []).length === 2, (html.match(/<\/script>/g) || []).length);
  ok('export: credentials absent from the file', !html.includes('s3cret') && !html.includes('topsecretcookie') && !html.includes(Buffer.from('alice:s3cret-pw').toString('base64')));
  const p = await browser.newPage();
  await p.goto('file://' + out);
  ok('export (hostile): page loads', (await pageReady(p)) === '1', p.consoleErrors.join('; '));
  await p.eval("location.hash = '#/exchange/2'; 1");
  await p.waitFor("((document.querySelector('#detail h2') || {}).textContent || '').startsWith('Exchange 2')");
  ok('export (hostile): no injected script ran', (await p.eval('window.pwned')) === undefined);
  ok('export (hostile): no injected element', (await p.eval("document.querySelectorAll('img, svg, iframe, object').length")) === 0);
  ok('export (hostile): body with </script> shown as text', (await p.eval("document.getElementById('detail').textContent")).includes('</script><script>window.pwned=5</script>'));
  await p.close();
}

/* eastrace proxy --web: a real TLS origin that holds Pings, curl through the proxy, the page
 * open meanwhile: a Sync row arrives by itself, a held Ping shows as pending with its heartbeat
 * counting down, then becomes a row. */
async function testLive(browser) {
  const https = require('https');
  const F = path.join(__dirname, '..', 'fixtures', 'proxy');
  const CLI = path.join(__dirname, '..', 'fixtures', 'cli');
  const pingBody = path.join(tmp, 'ping.wbxml');
  const pingResp = path.join(tmp, 'ping-resp.wbxml');
  cli(['encode', path.join(CLI, 'ping-req.xml'), '-o', pingBody]);
  cli(['encode', path.join(CLI, 'ping-resp-changes.xml'), '-o', pingResp]);
  const respBytes = fs.readFileSync(pingResp);
  const HOLD_MS = 5000;
  const origin = https.createServer({ cert: fs.readFileSync(path.join(F, 'origin-localhost.pem')), key: fs.readFileSync(path.join(F, 'origin-localhost.key')) }, (req, res) => {
    req.on('data', () => {});
    req.on('end', () => {
      const ping = /Cmd=Ping/.test(req.url);
      setTimeout(() => {
        res.writeHead(200, { 'Content-Type': 'application/vnd.ms-sync.wbxml', 'MS-Server-ActiveSync': '15.1' });
        res.end(ping ? respBytes : Buffer.alloc(0));
      }, ping ? HOLD_MS : 0);
    });
  });
  await new Promise(r => origin.listen(0, '127.0.0.1', r));
  const oport = origin.address().port;
  const data = path.join(tmp, 'xdg');
  const proxy = spawn(E, ['proxy', '--listen', '127.0.0.1:0', '--allow-target', '127.0.0.1', '--allow-target', 'localhost',
    '--upstream-ca', path.join(F, 'origin-ca.pem'), '--web', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'], env: Object.assign({}, process.env, { XDG_DATA_HOME: data }) });
  procs.push(proxy);
  let out = '', err = '';
  proxy.stdout.on('data', d => { out += d; });
  proxy.stderr.on('data', d => { err += d; });
  const end = Date.now() + 20000;
  while ((!/\n/.test(out) || !/listening on 127\.0\.0\.1:\d+/.test(err)) && Date.now() < end) await new Promise(r => setTimeout(r, 50));
  const url = out.split('\n')[0];
  const pm = /listening on 127\.0\.0\.1:(\d+)/.exec(err);
  ok('proxy --web: the URL is the first line of output', /^http:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]{32}$/.test(url), out + err);
  if (!pm) { origin.close(); return; }
  const pport = pm[1];
  const ca = path.join(data, 'eastrace', 'ca.pem');
  const curl = (cmd, body) => new Promise((resolve) => {
    const args = ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-x', 'http://127.0.0.1:' + pport, '--cacert', ca,
      '-H', 'Content-Type: application/vnd.ms-sync.wbxml', '-H', 'MS-ASProtocolVersion: 14.1', '-H', 'User-Agent: Apple-iPhone/1',
      'https://localhost:' + oport + '/Microsoft-Server-ActiveSync?Cmd=' + cmd + '&User=alice&DeviceId=LIVE1&DeviceType=iPhone'];
    if (body) args.push('--data-binary', '@' + body); else args.push('-X', 'POST', '-d', '');
    const c = spawn('curl', args, { stdio: ['ignore', 'pipe', 'ignore'] });
    let code = '';
    c.stdout.on('data', d => { code += d; });
    c.on('exit', () => resolve(code));
  });
  const page = await browser.newPage();
  await page.goto(url);
  await page.waitFor("document.body.dataset.ready === '1'");
  ok('proxy --web: live badge shown', await page.eval("!document.getElementById('live').hidden"));
  eqv('proxy --web: no exchange yet', matchedCount(await page.eval("document.getElementById('matched').textContent")), 0);
  eqv('proxy --web: a Sync through the proxy', await curl('Sync'), '200');
  const arrived = await page.waitFor("(r => r && r.dataset.n === '1' ? r.children[4].textContent : '')(document.querySelector('#grid-space .row'))", 10000).catch(() => '');
  eqv('proxy --web: the Sync arrives in the open page by itself', arrived, 'Sync');
  const t0 = Date.now();
  const held = curl('Ping', pingBody);
  const p1 = await page.waitFor("(p => p && !p.hidden && /Ping/.test(p.textContent) ? p.textContent : '')(document.getElementById('pending'))", 5000).catch(() => '');
  ok('proxy --web: the held Ping shows as pending with its heartbeat', /Ping LIVE1 localhost held \d+s, heartbeat 900s: \d+s left/.test(p1), p1);
  if (SHOTS) await page.screenshot(path.join(SHOTS, 'live.png'));
  const left = (t) => Number((/(\d+)s left/.exec(t) || [0, -1])[1]);
  const p2 = await page.waitFor(`(t => (/(\\d+)s left/.exec(t) || [0, 1e9])[1] < ${left(p1)} ? t : '')(document.getElementById('pending').textContent)`, 3500).catch(() => page.eval("document.getElementById('pending').textContent"));
  ok('proxy --web: its heartbeat counts down', left(p1) > 0 && left(p2) < left(p1), p1 + ' / ' + p2);
  eqv('proxy --web: the Ping is answered', await held, '200');
  ok('proxy --web: it was held by the origin', Date.now() - t0 >= HOLD_MS - 200);
  const row2 = await page.waitFor("(r => r.length > 1 ? r[1].children[4].textContent + ' ' + r[1].children[7].textContent : '')(document.querySelectorAll('#grid-space .row'))", 10000).catch(() => '');
  eqv('proxy --web: then it becomes a row (Ping, Status 2=Changes)', row2, 'Ping 2=Changes');
  ok('proxy --web: and is no longer pending', await page.waitFor("document.getElementById('pending').hidden", 5000).catch(() => false));
  ok('proxy --web: no script error', page.consoleErrors.length === 0, page.consoleErrors.join('; '));
  await page.close();
  proxy.kill('SIGINT');
  await new Promise(r => proxy.once('exit', r));
  ok('proxy --web: stops on SIGINT', proxy.exitCode === 0, 'exit ' + proxy.exitCode + ' ' + err.slice(-300));
  origin.close();
}

/* Three kinds of source of the same requests: one row per request with replay's "seen by". */
async function testTimeline(browser) {
  const tl = path.join(__dirname, '..', 'fixtures', 'timeline');
  const files = ['capture-appl1-5-requests.har', 'iis-appl1-dev2-6-eas-lines.log', 'mailboxlog-appl1-4-entries.txt'].map(f => path.join(tl, f));
  const want = replayJson(files);
  const web = await startWeb(files);
  const page = await browser.newPage();
  await page.goto(web.url);
  ok('three sources: page loads', (await pageReady(page)) === '1');
  const bits = { capture: 1, iis: 2, mailboxlog: 4 };
  const got = await page.eval("Array.from(document.querySelectorAll('#grid-space .row')).map(r => [Number(r.dataset.n), r.children[11].textContent])");
  eqv('three sources: one row per request, seen by as replay', got,
    want.rows.map(r => [r.n, ['cap', 'iis', 'mbx'].filter((k, i) => (r.seen_by || []).map(s => bits[s]).reduce((a, b) => a | b, 0) & (1 << i)).join(' ')]));
  const rules = await page.eval("fetch('/api/findings').then(r => r.json()).then(d => d.rules.map(r => r.rule).sort())");
  ok('three sources: the not-in-server-log note is there', rules.includes('not-in-server-log'), JSON.stringify(rules));
  if (SHOTS) await page.screenshot(path.join(SHOTS, 'timeline.png'));
  /* The find box searches what replay --find searches (et_pipe_find_text), server-log facts
   * too: the IIS log's Error:ServerError carried to the mailbox log's row, the IIS Ping's
   * heartbeat; the same in the page of export --html (its own filter code). */
  const filePage = await exportPage(browser, files, 'timeline.html', 'three sources');
  for (const q of ['ServerError', 'heartbeat 900', 'alice', 'no such text']) {
    const wantN = replayJson(files, ['--find', q]).rows.map(r => r.n);
    if (q !== 'no such text') ok('three sources: replay --find ' + q + ' finds exchanges', wantN.length > 0);
    for (const [where, p] of [['web', page], ['export --html', filePage]])
      eqv('three sources, ' + where + ': find ' + q + ' gives replay --find\'s exchanges', await filteredRows(p, { find: q }), wantN);
  }
  await filePage.close();
  await page.close();
  web.proc.kill('SIGINT');
}

/* The user filter names an account as --user does (et_eas_user_match): the server's and the
 * export --html page's own. */
async function testUser(browser) {
  const har = path.join(__dirname, '..', 'fixtures', 'pipeline', 'har-users-jdoe-in-3-forms-and-others.har');
  const web = await startWeb([har]);
  const page = await browser.newPage();
  await page.goto(web.url);
  ok('users: page loads', (await pageReady(page)) === '1');
  const filePage = await exportPage(browser, [har], 'users.html', 'users');
  for (const u of ['CONTOSO\\jdoe', 'JDOE', 'jdoe@contoso.com', 'FABRIKAM\\jdoe', 'jdoe2']) {
    const wantN = replayJson([har], ['--user', u]).rows.map(r => r.n);
    for (const [where, p] of [['web', page], ['export --html', filePage]])
      eqv('users, ' + where + ': user ' + u + ' gives replay --user\'s exchanges', await filteredRows(p, { user: u }), wantN);
  }
  await filePage.close();
  await page.close();
  web.proc.kill('SIGINT');
}

async function testExport(browser, cap, N) {
  const out = path.join(tmp, 'session.html');
  const t = Date.now();
  cli(['export', cap, '--html', out]);
  console.log('# export --html of ' + N + ' exchanges: ' + (Date.now() - t) + ' ms, ' + fs.statSync(out).size + ' bytes');
  const html = fs.readFileSync(out, 'utf8');
  ok('export: CSP allows no network (default-src none, hashed script)', /<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'sha256-[A-Za-z0-9+/=]+'/.test(html));
  ok('export: no http(s) URL loaded by the page', !/(src|href)="https?:/.test(html));
  const page = await browser.newPage();
  const requests = [];
  page.b.listeners.push((m) => { if (m.sessionId === page.sid && m.method === 'Network.requestWillBeSent') requests.push(m.params.request.url); });
  await page.goto('file://' + out);
  ok('export: page loads from the file', (await pageReady(page)) === '1', page.consoleErrors.join('; '));
  ok('export: no network request', requests.every(u => u.startsWith('file:')), requests.join(' '));
  eqv('export: row count is replay\'s', matchedCount(await page.eval("document.getElementById('matched').textContent")), N);
  for (const [f, args] of [[{ cmd: 'Ping' }, ['--cmd', 'Ping']], [{ find: 'Calendar' }, ['--find', 'Calendar']], [{ errors: true }, ['--errors']]]) {
    const t2 = await submitFilter(page, f);
    eqv('export: filter ' + args.join(' ') + ' as replay', matchedCount(t2), replayJson([cap], args).rows.length);
  }
  await submitFilter(page, {});
  const want = replayJson([cap]);
  const sync = want.rows.find(r => r.eas && r.eas.cmd === 'Sync' && r.response_bytes > 200 && r.status === 200);
  await page.eval(`location.hash = '#/exchange/${sync.n}'; 1`);
  await page.waitFor(`((document.querySelector('#detail h2') || {}).textContent || '').startsWith('Exchange ${sync.n}')`);
  eqv('export: response XML as eastrace show', await pageXmlTexts(page, 'resp'), showXmlTexts([cap], sync.n, 'resp'));
  ok('export: no script error', page.consoleErrors.length === 0, page.consoleErrors.join('; '));
  await page.close();
}

async function loadTime(browser, sizes) {
  const results = [];
  for (const n of sizes) {
    const cap = path.join(tmp, 'load-' + n + '.etcap');
    execFileSync(GEN, ['--count', String(n), '--devices', '200', cap], { stdio: 'ignore' });
    const t0 = Date.now();
    const web = await startWeb([cap]);
    const tUrl = Date.now() - t0;
    const page = await browser.newPage();
    const t1 = Date.now();
    await page.goto(web.url);
    await page.waitFor("document.body.dataset.ready === '1' && document.getElementById('grid-space').children.length > 0", 300000);
    const tFirst = Date.now() - t1;
    await pageReady(page);
    const tRead = Date.now() - t0;
    const t1b = Date.now();
    await page.goto(web.url);
    await pageReady(page);
    const tLoad = Date.now() - t1b;
    eqv('load time run: ' + n + ' rows', matchedCount(await page.eval("document.getElementById('matched').textContent")), n);
    const t2 = Date.now();
    await submitFilter(page, { find: 'Calendar' });
    const tFind = Date.now() - t2;
    const t3 = Date.now();
    await page.eval("document.querySelector('#grid-head [data-col=dur]').click(); 1");
    await page.waitFor("document.querySelector('#grid-head .sorted') && document.querySelector('#grid-head .sorted').dataset.col === 'dur' && document.querySelectorAll('#grid-space .row').length > 0");
    const tSort = Date.now() - t3;
    const rss = Number((fs.readFileSync('/proc/' + web.proc.pid + '/status', 'utf8').match(/VmHWM:\s+(\d+)/) || [0, 0])[1]);
    let exp = '';
    const out = path.join(tmp, 'load-' + n + '.html');
    if (n <= 20000) { /* a self-contained file of 100,000 exchanges is GBs: not a ticket attachment */
      const t4 = Date.now();
      cli(['export', cap, '--html', out]);
      const tExport = Date.now() - t4;
      const p2 = await browser.newPage();
      const t5 = Date.now();
      await p2.goto('file://' + out);
      await pageReady(p2);
      const tFile = Date.now() - t5;
      await p2.close();
      exp = `; export --html ${tExport} ms (${Math.round(fs.statSync(out).size / 1048576)} MiB), that file loads in ${tFile} ms`;
    }
    const spill = Number(execFileSync('sh', ['-c', 'ls -l /proc/' + web.proc.pid + '/fd/ 2>/dev/null | grep -c deleted || true'], { encoding: 'utf8' }).trim());
    const line = `# ${n} exchanges: URL after ${tUrl} ms, first rows in the page ${tFirst} ms after, all read ${tRead} ms (peak RSS ${Math.round(rss / 1024)} MiB, ${spill} spill file); page load once read ${tLoad} ms; find over all ${tFind} ms; sort by duration ${tSort} ms${exp}`;
    console.log(line);
    results.push(line);
    await page.close();
    web.proc.kill('SIGINT');
    fs.rmSync(cap, { force: true });
    fs.rmSync(out, { force: true });
  }
  return results;
}

async function main() {
  if (!E || !fs.existsSync(E)) { console.log('FAIL - no eastrace binary (ET_EASTRACE)'); console.log('0 passed, 1 failed'); process.exit(1); }
  const cap = path.join(tmp, 'session.etcap');
  execFileSync(GEN, ['--size', '2M', '--devices', '20', cap], { stdio: 'ignore' });
  const har = path.join(tmp, 'hostile.har');
  hostileHar(har);
  const browser = await Browser.launch();
  try {
    const N = await testServer(browser, cap);
    await testHostile(browser, har);
    await testTimeline(browser);
    await testUser(browser);
    await testLive(browser);
    await testExport(browser, cap, N);
    if (process.env.ET_WEB_LOADTIME) await loadTime(browser, process.env.ET_WEB_LOADTIME.split(',').map(Number));
  } catch (e) {
    ok('browser test ran to the end', false, e.stack);
  } finally {
    await browser.close();
    for (const p of procs) try { p.kill('SIGKILL'); } catch (e) { /* gone */ }
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  console.log(pass + ' passed, ' + fail + ' failed');
  process.exit(fail ? 1 : 0);
}

main();
