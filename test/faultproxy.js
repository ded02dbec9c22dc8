// faultproxy: a TCP proxy that injects network faults, for test/faults.bats.
//   node faultproxy.js TARGET_PORT [TARGET_HOST]
// Listens on a free loopback port and forwards every connection to
// TARGET_HOST (default 127.0.0.1):TARGET_PORT. Prints one line on stdout
// when ready, "PORT CONTROL_PORT", then nothing more.
//
// Control: connect to CONTROL_PORT and send lines; each gets one reply line
// ("ok", or "error: why"):
//   mode pass          forward as it comes
//   mode drop          a blackhole: nothing moves either way on any
//                      connection; new ones are accepted but not connected
//                      on. Held bytes move again when the mode changes (as
//                      TCP retransmits after a partition heals)
//   mode delay MS      every chunk waits MS milliseconds each way (latency,
//                      not a bandwidth cap: chunks keep their order)
//   mode reset         RST every connection, and each new one on accept
//   mode truncate N    a connection carries at most N bytes each way, then
//                      both its sides are closed (existing ones too)
//   mode lose-answer RE  a chunk from the client matching the regular
//                      expression RE (e.g. one HTTP request line) is passed
//                      on, and the connection is reset when the target
//                      starts to answer: the request was done, its answer
//                      lost (a test of retries of what is not idempotent)
//   close-all          close every connection (FIN), the mode unchanged
//   stats              one JSON line: connections, resets, cuts, bytes
// Uses node's net module only. Memory stays bounded: a direction whose queue
// holds more than HIGH bytes stops reading until it drains.
'use strict';
const net = require('net');

const HIGH = 4 * 1048576;
const [tport, thost = '127.0.0.1'] = process.argv.slice(2);
if (!/^[0-9]+$/.test(tport || '')) {
  console.error('usage: faultproxy.js TARGET_PORT [TARGET_HOST]');
  process.exit(100);
}

let mode = { name: 'pass', arg: 0 };
const conns = new Set();
const stats = { accepted: 0, resets: 0, cuts: 0, lost: 0, closed: 0, up: 0, down: 0 };

const dropping = () => mode.name === 'drop';

// One direction of a connection: bytes read from src, queued, written to dst.
class Dir {
  constructor(conn, key) {
    this.conn = conn;
    this.key = key;          // 'up' (client to target) or 'down'
    this.q = [];             // { buf, due }
    this.bytes = 0;          // queued
    this.sent = 0;           // written to dst in all
    this.blocked = false;    // dst.write returned false
    this.ended = false;      // src ended: end dst once the queue is empty
    this.timer = null;
  }
  get src() { return this.key === 'up' ? this.conn.c : this.conn.u; }
  get dst() { return this.key === 'up' ? this.conn.u : this.conn.c; }

  push(buf) {
    if (mode.name === 'lose-answer') {
      if (this.key === 'up' && mode.re.test(buf.toString('latin1'))) this.conn.lose = true;
      if (this.key === 'down' && this.conn.lose) { stats.lost++; return this.conn.reset(); }
    }
    const delay = mode.name === 'delay' ? mode.arg : 0;
    this.q.push({ buf, due: Date.now() + delay });
    this.bytes += buf.length;
    this.pump();
  }

  // write what is due, in order; cut the connection at the truncate limit
  pump() {
    const c = this.conn;
    if (c.dead || !c.u || c.connecting || dropping()) return this.conn.flow();
    while (this.q.length && !this.blocked) {
      const head = this.q[0];
      const wait = head.due - Date.now();
      if (wait > 0) {
        if (!this.timer) this.timer = setTimeout(() => { this.timer = null; this.pump(); }, wait);
        break;
      }
      let buf = head.buf;
      let cut = false;
      if (mode.name === 'truncate' && this.sent + buf.length >= mode.arg) {
        buf = buf.subarray(0, Math.max(0, mode.arg - this.sent));
        cut = true;
      }
      this.q.shift();
      this.bytes -= head.buf.length;
      this.sent += buf.length;
      stats[this.key] += buf.length;
      if (buf.length && !this.dst.write(buf)) {
        this.blocked = true;
        this.dst.once('drain', () => { this.blocked = false; this.pump(); });
      }
      if (cut) return c.cut();
    }
    if (this.ended && !this.q.length && !this.blocked) this.dst.end();
    this.conn.flow();
  }
}

class Conn {
  constructor(c) {
    this.c = c;
    this.u = null;
    this.connecting = false;
    this.dead = false;
    this.lose = false;       // lose-answer: reset at the first byte back
    this.up = new Dir(this, 'up');
    this.down = new Dir(this, 'down');
    conns.add(this);
    this.watch(c, this.up);
    if (!dropping()) this.connect();
    this.flow();
  }

  watch(s, dir) {
    s.on('data', (b) => dir.push(b));
    s.on('end', () => { dir.ended = true; dir.pump(); });
    s.on('error', () => this.kill(true));
    s.on('close', () => this.kill(false));
  }

  connect() {
    if (this.u || this.dead) return;
    this.connecting = true;
    this.u = net.connect({ port: Number(tport), host: thost, allowHalfOpen: true });
    this.u.on('connect', () => { this.connecting = false; this.up.pump(); this.down.pump(); });
    this.watch(this.u, this.down);
    this.flow();
  }

  // pause or resume each side: a blackhole, or a full queue, or no target yet
  flow() {
    if (this.dead) return;
    const hold = (dir) => dropping() || dir.bytes > HIGH;
    if (hold(this.up) || !this.u) this.c.pause(); else this.c.resume();
    if (this.u) { if (hold(this.down)) this.u.pause(); else this.u.resume(); }
  }

  // a socket failed (rst: pass the reset on) or closed
  kill(rst) {
    if (this.dead) return;
    if (!rst) {
      // a clean close: the other side still gets what is queued (pump ends it)
      const both = this.c.destroyed && (!this.u || this.u.destroyed);
      if (!both) return;
    }
    this.dead = true;
    conns.delete(this);
    for (const d of [this.up, this.down]) if (d.timer) clearTimeout(d.timer);
    for (const s of [this.c, this.u]) {
      if (!s || s.destroyed) continue;
      if (rst) s.resetAndDestroy(); else s.destroy();
    }
    stats.closed++;
  }

  reset() { stats.resets++; this.kill(true); }

  cut() {
    stats.cuts++;
    this.c.end();
    if (this.u) this.u.end();
    // the peers may not close their side: make sure it ends
    setTimeout(() => { this.c.destroy(); if (this.u) this.u.destroy(); this.kill(false); }, 100);
    this.dead = true;
    conns.delete(this);
  }
}

function setMode(words) {
  const [name, arg] = words;
  const n = Number(arg);
  if (name === 'pass' || name === 'drop' || name === 'reset') {
    mode = { name, arg: 0 };
  } else if ((name === 'delay' || name === 'truncate') && /^[0-9]+$/.test(arg || '')) {
    mode = { name, arg: n };
  } else if (name === 'lose-answer' && arg) {
    try {
      mode = { name, arg: 0, re: new RegExp(words.slice(1).join(' ')) };
    } catch (e) {
      return 'error: ' + e.message;
    }
  } else {
    return 'error: mode pass|drop|delay MS|reset|truncate N|lose-answer RE';
  }
  for (const c of [...conns]) {
    if (name === 'reset') { c.reset(); continue; }
    if (!dropping()) c.connect();
    c.up.pump();
    c.down.pump();
    if (name === 'truncate' && !c.dead && (c.up.sent >= n || c.down.sent >= n)) c.cut();
  }
  return 'ok';
}

function command(line) {
  const words = line.trim().split(/\s+/);
  if (words[0] === 'mode') return setMode(words.slice(1));
  if (words[0] === 'close-all') {
    for (const c of [...conns]) c.cut();
    return 'ok';
  }
  if (words[0] === 'stats') return JSON.stringify(Object.assign({ mode: mode.name, open: conns.size }, stats));
  return 'error: mode ...|close-all|stats';
}

const proxy = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (c) => {
  stats.accepted++;
  if (mode.name === 'reset') {
    stats.resets++;
    c.on('error', () => {});
    c.resetAndDestroy();
    return;
  }
  new Conn(c);
});

const control = net.createServer((s) => {
  let buf = '';
  s.setEncoding('utf8');
  s.on('error', () => {});
  s.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.trim()) s.write(command(line) + '\n');
    }
  });
});

proxy.listen(0, '127.0.0.1', () => {
  control.listen(0, '127.0.0.1', () => {
    process.stdout.write(`${proxy.address().port} ${control.address().port}\n`);
  });
});
process.on('SIGTERM', () => process.exit(0));
