'use strict';
/*
 * A minimal Chrome DevTools Protocol client for the web tests: Debian's chromium, headless,
 * driven over --remote-debugging-pipe (JSON messages ended by NUL on fds 3 and 4), so no
 * WebSocket client and no npm package are needed.
 */
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const CHROMIUM = process.env.ET_CHROMIUM || '/usr/bin/chromium';

class Browser {
  static async launch(extraArgs = []) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'et-web-chromium-'));
    const args = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-extensions', '--mute-audio', '--hide-scrollbars', '--window-size=1400,900',
      '--remote-debugging-pipe', '--user-data-dir=' + dir, ...extraArgs, 'about:blank'];
    const proc = spawn(CHROMIUM, args, { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
    proc.stderr.on('data', () => {});
    const b = new Browser(proc, dir);
    await b.send('Target.setDiscoverTargets', { discover: false });
    return b;
  }

  constructor(proc, dir) {
    this.proc = proc;
    this.dir = dir;
    this.id = 0;
    this.pending = new Map();
    this.listeners = [];
    this.buf = Buffer.alloc(0);
    this.out = proc.stdio[3];
    proc.stdio[4].on('data', (d) => this.onData(d));
    proc.on('exit', () => {
      for (const [, p] of this.pending) p.reject(new Error('chromium exited'));
      this.pending.clear();
    });
  }

  onData(d) {
    this.buf = Buffer.concat([this.buf, d]);
    let i;
    while ((i = this.buf.indexOf(0)) >= 0) {
      const msg = JSON.parse(this.buf.subarray(0, i).toString('utf8'));
      this.buf = this.buf.subarray(i + 1);
      if (msg.id !== undefined && this.pending.has(msg.id)) {
        const p = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        if (msg.error) p.reject(new Error(msg.error.message + ' (' + p.method + ')'));
        else p.resolve(msg.result);
      } else if (msg.method) {
        for (const l of this.listeners) l(msg);
      }
    }
  }

  send(method, params = {}, sessionId) {
    const id = ++this.id;
    const m = { id, method, params };
    if (sessionId) m.sessionId = sessionId;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, method });
      this.out.write(JSON.stringify(m) + '\0');
    });
  }

  async newPage() {
    const { browserContextId } = await this.send('Target.createBrowserContext', {});
    const { targetId } = await this.send('Target.createTarget', { url: 'about:blank', browserContextId });
    const { sessionId } = await this.send('Target.attachToTarget', { targetId, flatten: true });
    const page = new Page(this, sessionId, targetId, browserContextId);
    await page.send('Page.enable');
    await page.send('Runtime.enable');
    await page.send('Network.enable');
    await page.send('Page.bringToFront'); /* a background page's timers are throttled */
    return page;
  }

  async close() {
    try { await Promise.race([this.send('Browser.close'), new Promise(r => setTimeout(r, 3000))]); } catch (e) { /* gone */ }
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      const exited = new Promise(r => this.proc.once('exit', r));
      try { this.proc.kill('SIGKILL'); } catch (e) { /* gone */ }
      await Promise.race([exited, new Promise(r => setTimeout(r, 5000))]);
    }
    for (let i = 0; i < 5; i++) {
      try { fs.rmSync(this.dir, { recursive: true, force: true }); break; } catch (e) { await new Promise(r => setTimeout(r, 200)); }
    }
  }
}

class Page {
  constructor(browser, sessionId, targetId, contextId) {
    this.b = browser;
    this.sid = sessionId;
    this.targetId = targetId;
    this.contextId = contextId;
    this.events = [];
    this.consoleErrors = [];
    browser.listeners.push((m) => {
      if (m.sessionId !== this.sid) return;
      this.events.push(m);
      if (m.method === 'Runtime.exceptionThrown') this.consoleErrors.push(m.params.exceptionDetails.text + ' ' + JSON.stringify(m.params.exceptionDetails.exception && m.params.exceptionDetails.exception.description));
      if (m.method === 'Runtime.consoleAPICalled' && m.params.type === 'error') this.consoleErrors.push(m.params.args.map(a => a.value || a.description).join(' '));
      if (m.method === 'Log.entryAdded' && m.params.entry.level === 'error') this.consoleErrors.push(m.params.entry.text);
    });
  }

  send(method, params = {}) { return this.b.send(method, params, this.sid); }

  async goto(url) {
    this.events = [];
    const loaded = this.waitEvent('Page.loadEventFired', 30000);
    const r = await this.send('Page.navigate', { url });
    if (r.errorText) throw new Error('navigate ' + url + ': ' + r.errorText);
    await loaded;
  }

  waitEvent(method, timeout = 10000) {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('timeout waiting for ' + method)), timeout);
      const l = (m) => {
        if (m.sessionId === this.sid && m.method === method) {
          clearTimeout(t);
          this.b.listeners.splice(this.b.listeners.indexOf(l), 1);
          resolve(m.params);
        }
      };
      this.b.listeners.push(l);
    });
  }

  async eval(expr) {
    const r = await this.send('Runtime.evaluate', { expression: expr, awaitPromise: true, returnByValue: true });
    if (r.exceptionDetails) throw new Error('eval: ' + (r.exceptionDetails.exception ? r.exceptionDetails.exception.description : r.exceptionDetails.text));
    return r.result.value;
  }

  async waitFor(expr, timeout = 15000) {
    const end = Date.now() + timeout;
    for (;;) {
      const v = await this.eval(expr);
      if (v) return v;
      if (Date.now() > end) throw new Error('timeout waiting for ' + expr);
      await new Promise(r => setTimeout(r, 30));
    }
  }

  async key(key, code, keyCode, text) {
    await this.send('Input.dispatchKeyEvent', { type: 'keyDown', key, code, windowsVirtualKeyCode: keyCode, text });
    await this.send('Input.dispatchKeyEvent', { type: 'keyUp', key, code, windowsVirtualKeyCode: keyCode });
  }

  async screenshot(file) {
    const r = await this.send('Page.captureScreenshot', { format: 'png' });
    fs.writeFileSync(file, Buffer.from(r.data, 'base64'));
  }

  async close() {
    await this.b.send('Target.closeTarget', { targetId: this.targetId });
    await this.b.send('Target.disposeBrowserContext', { browserContextId: this.contextId });
  }
}

module.exports = { Browser };
