// rs-order-standin: a protocol-faithful stand-in for the REGARDS rs-order
// microservice, for tests only (never installed). It speaks rs-order's AMQP
// and REST protocol as read from the REGARDS sources (RegardsOss/regards-backend:
// rs-order order-amqp, order-dto, order-rest, order-service; rs-microservice
// amqp-regards, gson-regards, security-regards): it consumes OrderRequestDtoEvent and
// OrderCancelRequestDtoEvent from the queues rs-order declares, answers with
// rs-order's OrderResponseDtoEvent sequence (GRANTED, SUBORDER_DONE per
// suborder, DONE; or DENIED; or FAILED), and serves the available-files
// listing and the file downloads over HTTP on 127.0.0.1, JWT-checked.
//
//   node rs-order-standin.js serve [options] FILES_DIR
//     --url URL          AMQP URL (default $FERRY_AMQP_URL)
//     --port N           HTTP port on 127.0.0.1 (default 0: any free port)
//     --port-file FILE   written with the port once HTTP listens and the AMQP
//                        topology is declared (tests wait for it)
//     --config FILE      behaviour, a JSON file re-read at each request (below)
//     --log FILE         NDJSON record of what was received and published
//     --state FILE       orders kept across restarts of the stand-in
//     --secret S         HS512 JWT key (default: REGARDS' built-in default key)
//     --no-auth          accept REST calls without a token
//     --namespace NS     AMQP namespace (default regards)
//     --type-id ID       microservice type id in queue names (default rs-order)
//     --project-host URL host part of downloadUrl (default http://127.0.0.1:PORT)
//   node rs-order-standin.js token --tenant T --user U [--role R] [--ttl S] [--secret S]
//     print a REGARDS-style JWT (HS512; claims tenant, role, sub, email, exp)
//
// FILES_DIR: each subdirectory is a product (productId = its name, version 1)
// holding its regular files; a regular file at the top level is a product of
// its own (productId = its name without extension). A query selects the
// products named by its `productId:X` terms, or every product when it has
// none. filters.dataTypes must include RAWDATA (all files are RAWDATA);
// filters.filenameRegExp must match the whole file name.
//
// Config file (re-read for each request; absent = defaults):
//   {"users": ["ana@example.org"],            known REGARDS users (absent: all)
//    "default": {BEHAVIOUR},
//    "rules": [{"prefix": "deny-", BEHAVIOUR...}, ...]}  first correlationId prefix wins
// BEHAVIOUR fields (merged over "default"):
//   "action": "done" (default) | "deny" | "fail"
//   "errorType": for deny (default ORDER_LIMIT_REACHED) and fail (default
//                INTERNAL_ERROR; EMPTY_ORDER fails without GRANTED, as rs-order)
//   "message": overrides the message
//   "suborders": N (default 1): files split into N suborders, one SUBORDER_DONE each
//   "delayMs": before the first response (default 0); "stepDelayMs": between
//              the next ones (default 20)
//   "corrupt": ["a.nc"]: those files are served with their first byte altered
//   "downloadStatus": 500: downloads of that order answer this status
//   "keepDownloaded": true: downloaded files stay in the listing (rs-order
//              drops a stored file from the listing once fully downloaded)
//
// Log lines (--log): {"at","kind","tenant","exchange","headers","properties","body"}
// with kind "request", "cancel", "rejected" (no tenant or no correlationId:
// acked and dropped, as rs-order does), "published"
// (a response confirmed by the broker) and "http" (method, path, status, user).
'use strict';
const fs = require('fs');
const path = require('path');
const http = require('http');
const crypto = require('crypto');
const amqp = require(path.join(process.env.FERRY_NODE_DIR ||
  path.join(__dirname, '..', '.deps', 'node'), 'node_modules', 'amqplib'));

const REGARDS_DEFAULT_KEY = '!!!!!==========abcdefghijklmnopqrstuvwxyz0123456789==========!!!!!';
const PKG = 'fr.cnes.regards.modules.order';
const REQUEST_TYPE = `${PKG}.amqp.input.OrderRequestDtoEvent`;
const CANCEL_TYPE = `${PKG}.amqp.input.OrderCancelRequestDtoEvent`;
const RESPONSE_TYPE = `${PKG}.amqp.output.OrderResponseDtoEvent`;
const REQUEST_HANDLER = `${PKG}.service.request.OrderRequestEventHandler`;
const CANCEL_HANDLER = `${PKG}.service.request.OrderCancelRequestEventHandler`;
const DLX = 'regards.DLX';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const say = (level, msg) => process.stderr.write(`rs-order-standin: ${level}: ${msg}\n`);

function parseArgs(argv) {
  const o = { positional: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--no-auth') o.noAuth = true;
    else if (a.startsWith('--')) {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      o[a.slice(2).replace(/-([a-z])/g, (m, c) => c.toUpperCase())] = argv[++i];
    } else o.positional.push(a);
  }
  return o;
}

// ---- JWT (HS512 over the raw UTF-8 bytes of the key, as REGARDS' JWTService)

const b64url = (buf) => Buffer.from(buf).toString('base64url');

function makeToken(key, claims) {
  const head = b64url(JSON.stringify({ alg: 'HS512' }));
  const body = b64url(JSON.stringify(claims));
  const sig = crypto.createHmac('sha512', Buffer.from(key, 'utf8')).update(`${head}.${body}`).digest();
  return `${head}.${body}.${b64url(sig)}`;
}

// the claims of a valid token, or null
function checkToken(key, token) {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  let head, claims;
  try {
    head = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
    claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  } catch (e) { return null; }
  if (!head || head.alg !== 'HS512' || !claims || typeof claims !== 'object') return null;
  const want = crypto.createHmac('sha512', Buffer.from(key, 'utf8'))
    .update(`${parts[0]}.${parts[1]}`).digest();
  const got = Buffer.from(parts[2], 'base64url');
  if (got.length !== want.length || !crypto.timingSafeEqual(got, want)) return null;
  for (const c of ['tenant', 'role', 'sub', 'email'])
    if (typeof claims[c] !== 'string') return null;
  if (typeof claims.exp === 'number' && claims.exp * 1000 <= Date.now()) return null;
  return claims;
}

// ---- state: orders and the outbox, optionally kept in a file

class Store {
  constructor(file) {
    this.file = file;
    this.s = { nextId: 1000, orders: {}, outbox: [] };
    if (file && fs.existsSync(file)) this.s = JSON.parse(fs.readFileSync(file, 'utf8'));
  }
  id() { return this.s.nextId++; }
  save() {
    if (!this.file) return;
    const tmp = `${this.file}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(this.s));
    fs.renameSync(tmp, this.file);
  }
}

// ---- the stand-in

class StandIn {
  constructor(opt) {
    this.opt = opt;
    this.filesDir = opt.positional[0];
    this.url = opt.url || process.env.FERRY_AMQP_URL;
    this.ns = opt.namespace || 'regards';
    this.typeId = opt.typeId || 'rs-order';
    this.key = opt.secret || REGARDS_DEFAULT_KEY;
    this.store = new Store(opt.state);
    this.exReq = `${this.ns}.broadcast.${REQUEST_TYPE}`;
    this.exCancel = `${this.ns}.broadcast.${CANCEL_TYPE}`;
    this.exResp = `${this.ns}.broadcast.${RESPONSE_TYPE}`;
    this.qReq = `${this.ns}.broadcast.${this.typeId}.${REQUEST_HANDLER}`;
    this.qCancel = `${this.ns}.broadcast.${this.typeId}.${CANCEL_HANDLER}`;
    this.conn = null;
    this.pub = null;
    this.flushing = false;
    this.stopping = false;
    this.timers = new Map();
  }

  log(entry) {
    if (!this.opt.log) return;
    fs.appendFileSync(this.opt.log, JSON.stringify(Object.assign({ at: new Date().toISOString() }, entry)) + '\n');
  }

  config() {
    if (!this.opt.config || !fs.existsSync(this.opt.config)) return {};
    try {
      return JSON.parse(fs.readFileSync(this.opt.config, 'utf8')) || {};
    } catch (e) {
      say('warning', `${this.opt.config}: ${e.message}; defaults used`);
      return {};
    }
  }

  behaviour(cfg, cid) {
    const b = Object.assign({ action: 'done', suborders: 1, delayMs: 0, stepDelayMs: 20 }, cfg.default || {});
    for (const r of cfg.rules || []) {
      if (typeof r.prefix === 'string' && cid.startsWith(r.prefix)) {
        Object.assign(b, r);
        break;
      }
    }
    return b;
  }

  // products of FILES_DIR: [{productId, version, files: [{name, path, size}]}]
  products() {
    const out = [];
    const entries = fs.readdirSync(this.filesDir, { withFileTypes: true })
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const p = path.join(this.filesDir, e.name);
      if (e.isDirectory()) {
        const files = fs.readdirSync(p, { withFileTypes: true }).filter((f) => f.isFile())
          .map((f) => f.name).sort()
          .map((n) => ({ name: n, path: path.join(p, n), size: fs.statSync(path.join(p, n)).size }));
        out.push({ productId: e.name, version: 1, files });
      } else if (e.isFile()) {
        out.push({ productId: e.name.replace(/\.[^.]*$/, ''), version: 1,
          files: [{ name: e.name, path: p, size: fs.statSync(p).size }] });
      }
    }
    return out;
  }

  select(req) {
    const all = this.products();
    const chosen = new Set();
    for (const q of req.queries) {
      const ids = [...String(q).matchAll(/productId:("?)([^\s")]+)\1/g)].map((m) => m[2]);
      for (const p of all) if (ids.length === 0 || ids.includes(p.productId)) chosen.add(p);
    }
    let re = null;
    if (req.filters && typeof req.filters.filenameRegExp === 'string')
      re = new RegExp(`^(?:${req.filters.filenameRegExp})$`);
    const rawdata = !req.filters || (req.filters.dataTypes || []).includes('RAWDATA');
    const files = [];
    for (const p of all) {
      if (!chosen.has(p) || !rawdata) continue;
      for (const f of p.files) {
        if (re && !re.test(f.name)) continue;
        const md5 = crypto.createHash('md5').update(fs.readFileSync(f.path)).digest('hex');
        files.push({ productId: p.productId, version: p.version, name: f.name, path: f.path,
          size: f.size, md5 });
      }
    }
    return files;
  }

  // the validation rs-order's OrderRequestEventHandler does: [{code, msg, field, value}]
  validate(req, cfg) {
    const errs = [];
    const field = (code, msg, f, v) => errs.push({ code, msg, field: f, value: v });
    if (!Array.isArray(req.queries) || req.queries.length === 0)
      field('NotEmpty', 'list of queries should not be empty', 'queries', req.queries);
    if (req.filters !== undefined && req.filters !== null &&
        (!Array.isArray(req.filters.dataTypes) || req.filters.dataTypes.length === 0))
      field('NotEmpty', 'There should be at least one datatype to order. DataType can be RAWDATA or QUICKLOOK',
        'filters.dataTypes', req.filters.dataTypes);
    if (typeof req.correlationId === 'string' && req.correlationId.length > 255)
      field('Size', 'provided correlationId must not exceed 255 characters.', 'correlationId', req.correlationId);
    let errorType = 'INTERNAL_ERROR';
    if (req.user === undefined || req.user === null) {
      field('INVALID_CONTENT', 'User should be present', 'user', null);
    } else {
      if (String(req.user).length > 128)
        field('Size', 'user must not exceed 128 characters.', 'user', req.user);
      if (Array.isArray(cfg.users) && !cfg.users.includes(req.user)) {
        errorType = 'FORBIDDEN';
        field('FORBIDDEN', `Unknown user : ${req.user}`, 'user', null);
      }
    }
    return { errs, errorType };
  }

  // ---- AMQP side

  async declare(conn) {
    const ch = await conn.createChannel();
    ch.on('error', () => {});
    // rs-order's framework declares regards.DLX as a topic exchange; keep an
    // existing one whatever its type (a redeclaration of another type fails)
    let haveDlx = true;
    const probe = await conn.createChannel();
    probe.on('error', () => {});
    try { await probe.checkExchange(DLX); await probe.close(); } catch (e) { haveDlx = false; }
    if (!haveDlx) await ch.assertExchange(DLX, 'topic', { durable: true });
    for (const [ex, q] of [[this.exReq, this.qReq], [this.exCancel, this.qCancel]]) {
      await ch.assertExchange(ex, 'fanout', { durable: true });
      const dlq = `${q}.DLQ`;
      await ch.assertQueue(dlq, { durable: true, arguments: { 'x-max-priority': 255 } });
      await ch.bindQueue(dlq, DLX, dlq);
      await ch.assertQueue(q, { durable: true, arguments: { 'x-max-priority': 255,
        'x-dead-letter-exchange': DLX, 'x-dead-letter-routing-key': dlq } });
      await ch.bindQueue(q, ex, '');
    }
    await ch.assertExchange(this.exResp, 'fanout', { durable: true });
    await ch.close();
  }

  async amqpLoop(onReady) {
    let first = true, failures = 0;
    while (!this.stopping) {
      try {
        const conn = await amqp.connect(this.url);
        conn.on('error', () => {});
        const closed = new Promise((r) => conn.on('close', r));
        this.conn = conn;
        await this.declare(conn);
        const ch = await conn.createChannel();
        ch.on('error', () => {});
        ch.on('close', () => { conn.close().catch(() => {}); });
        await ch.prefetch(100);
        await ch.consume(this.qReq, (m) => this.onRequest(ch, m));
        await ch.consume(this.qCancel, (m) => this.onCancel(ch, m));
        this.pub = await conn.createConfirmChannel();
        this.pub.on('error', () => {});
        this.pub.on('close', () => { conn.close().catch(() => {}); });
        say('info', `connected, consuming ${this.qReq}`);
        failures = 0;
        if (first) { first = false; onReady(); }
        this.flush();
        await closed;
        say('info', 'connection closed');
      } catch (e) {
        // one line per outage, not one per attempt
        if (failures++ % 60 === 0) say('warning', `amqp: ${e.message}; reconnecting`);
      }
      this.conn = null;
      this.pub = null;
      if (!this.stopping) await sleep(500);
    }
  }

  // the message's properties and headers as logged
  static describe(m) {
    const p = Object.assign({}, m.properties);
    const headers = p.headers || {};
    delete p.headers;
    for (const k of Object.keys(p)) if (p[k] === undefined) delete p[k];
    return { headers, properties: p, exchange: m.fields.exchange };
  }

  parse(m) {
    try {
      const b = JSON.parse(m.content.toString('utf8'));
      return b && typeof b === 'object' && !Array.isArray(b) ? b : null;
    } catch (e) { return null; }
  }

  onRequest(ch, m) {
    if (!m) return;
    const d = StandIn.describe(m);
    const tenant = d.headers['regards.tenant'];
    const body = this.parse(m);
    if (typeof tenant !== 'string' || tenant === '' || !body || typeof body.correlationId !== 'string') {
      // rs-order's batch listener logs, notifies the administrators, and
      // acks: the message is dropped, not dead-lettered, and not answered
      this.log(Object.assign({ kind: 'rejected', raw: m.content.toString('utf8') }, d,
        { why: typeof tenant !== 'string' || tenant === '' ? 'missing regards.tenant' : 'no correlationId' }));
      ch.ack(m);
      return;
    }
    this.log(Object.assign({ kind: 'request', tenant, body }, d));
    try {
      this.accept(tenant, body);
    } catch (e) {
      say('error', `${body.correlationId}: ${e.message}`);
      this.enqueue(tenant, { status: 'FAILED', correlationId: body.correlationId,
        message: `${e.name}: ${e.message}`, errorType: 'INTERNAL_ERROR' });
    }
    this.store.save();
    ch.ack(m);
  }

  onCancel(ch, m) {
    if (!m) return;
    const d = StandIn.describe(m);
    const tenant = d.headers['regards.tenant'];
    const body = this.parse(m);
    if (typeof tenant !== 'string' || tenant === '') {
      this.log(Object.assign({ kind: 'rejected', raw: m.content.toString('utf8'), why: 'missing regards.tenant' }, d));
      ch.ack(m);
      return;
    }
    this.log(Object.assign({ kind: 'cancel', tenant, body }, d));
    const o = body && this.store.s.orders[body.orderId];
    if (o && o.tenant === tenant && body.correlationId) {
      // rs-order pauses then deletes the order; nothing is answered
      o.deleted = true;
      o.plan = o.plan.slice(0, o.step);
      const t = this.timers.get(o.orderId);
      if (t) clearTimeout(t);
      this.store.save();
    }
    ch.ack(m);
  }

  // turn a request into its planned response events
  accept(tenant, req) {
    const cfg = this.config();
    const b = this.behaviour(cfg, req.correlationId);
    const cid = req.correlationId;
    const { errs, errorType } = this.validate(req, cfg);
    if (errs.length) {
      const message = errs.map((e) => `[${e.code}] ${e.msg} at ${e.field}: rejected value [${
        e.value === undefined || e.value === null ? 'null' : Array.isArray(e.value) ? `{${e.value.join(', ')}}` : e.value}].`)
        .join(', ');
      return this.enqueue(tenant, { status: 'DENIED', correlationId: cid, message, errorType, errors: errs.length });
    }
    if (b.action === 'deny') {
      const et = b.errorType || 'ORDER_LIMIT_REACHED';
      const r = { status: 'DENIED', correlationId: cid, errorType: et,
        message: b.message || (et === 'ORDER_LIMIT_REACHED' ?
          'ExceededBasketSizeException: The size of the basket [0 bytes] exceeds the maximum size allowed [0 bytes]. Please review the order requested so that it does not exceed the maximum size configured.' :
          `[${et}] denied by the stand-in configuration`) };
      if (et !== 'ORDER_LIMIT_REACHED') r.errors = 1;
      return this.schedule(tenant, { correlationId: cid, plan: [{ body: r }], delayMs: b.delayMs });
    }
    const files = this.select(req);
    if (files.length === 0 || (b.action === 'fail' && b.errorType === 'EMPTY_ORDER')) {
      return this.schedule(tenant, { correlationId: cid, delayMs: b.delayMs, plan: [{ body: {
        status: 'FAILED', correlationId: cid, errorType: 'EMPTY_ORDER',
        message: b.message || 'EmptySelectionException: This selection contains no file that can be ordered' } }] });
    }
    const total = files.reduce((s, f) => s + f.size, 0);
    if (typeof req.sizeLimitInBytes === 'number' && total > req.sizeLimitInBytes) {
      return this.schedule(tenant, { correlationId: cid, delayMs: b.delayMs, plan: [{ body: {
        status: 'DENIED', correlationId: cid, errorType: 'ORDER_LIMIT_REACHED',
        message: `ExceededBasketSizeException: The size of the basket [${total} bytes] exceeds the maximum size allowed [${req.sizeLimitInBytes} bytes]. Please review the order requested so that it does not exceed the maximum size configured.` } }] });
    }
    // an order: GRANTED, then SUBORDER_DONE per suborder and DONE, or FAILED
    const orderId = this.store.id();
    const n = Math.max(1, Number(b.suborders) || 1);
    const subIds = [];
    for (let i = 0; i < n; i++) subIds.push(this.store.id());
    const per = Math.ceil(files.length / n);
    const ofiles = files.map((f, i) => Object.assign({ id: this.store.id(), subOrderId: subIds[Math.floor(i / per)],
      state: 'PENDING' }, f));
    const dl = `${this.projectHost()}/api/v1/rs-order/user/orders/${orderId}/download`;
    const user = req.user;
    const plan = [{ body: { status: 'GRANTED', orderId, correlationId: cid } }];
    if (b.action === 'fail') {
      plan.push({ body: { status: 'FAILED', orderId, correlationId: cid,
        message: b.message || `Order of user ${user} is finished with errors. One or many files could not be retrieved.`,
        errorType: b.errorType || 'INTERNAL_ERROR', errors: ofiles.length, totalSubOrders: n } });
    } else {
      for (const s of subIds) {
        plan.push({ available: s, body: { status: 'SUBORDER_DONE', orderId, correlationId: cid,
          message: `A sub-order of user ${user} is finished and ready to download.`, downloadLink: dl,
          totalSubOrders: n, subOrderId: s } });
      }
      plan.push({ body: { status: 'DONE', orderId, correlationId: cid,
        message: `Order of user ${user} is finished`, downloadLink: dl, totalSubOrders: n } });
    }
    return this.schedule(tenant, { orderId, correlationId: cid, user, files: ofiles, plan, delayMs: b.delayMs,
      stepDelayMs: b.stepDelayMs, corrupt: b.corrupt || [], downloadStatus: b.downloadStatus || 0,
      keepDownloaded: !!b.keepDownloaded });
  }

  projectHost() {
    return this.opt.projectHost || `http://127.0.0.1:${this.port}`;
  }

  enqueue(tenant, body) {
    this.store.s.outbox.push({ tenant, body });
    this.flush();
  }

  // an order (or a bare answer) whose plan runs step by step, resumable
  schedule(tenant, o) {
    const key = o.orderId || `x${this.store.id()}`;
    o.orderId = o.orderId || key;
    Object.assign(o, { tenant, step: 0, dueAt: Date.now() + (Number(o.delayMs) || 0) });
    this.store.s.orders[key] = o;
    this.arm(o);
  }

  arm(o) {
    if (o.deleted || o.step >= o.plan.length) return;
    const t = setTimeout(() => this.advance(o), Math.max(0, o.dueAt - Date.now()));
    this.timers.set(o.orderId, t);
  }

  advance(o) {
    this.timers.delete(o.orderId);
    if (o.deleted || o.step >= o.plan.length) return;
    const s = o.plan[o.step++];
    if (s.available) for (const f of o.files) if (f.subOrderId === s.available) f.state = 'AVAILABLE';
    o.dueAt = Date.now() + (o.stepDelayMs === undefined ? 20 : Number(o.stepDelayMs));
    this.enqueue(o.tenant, s.body);
    this.store.save();
    this.arm(o);
  }

  // publish the outbox in order, each message confirmed before the next;
  // what is not confirmed stays for the next connection
  async flush() {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.pub && this.store.s.outbox.length) {
        const { tenant, body } = this.store.s.outbox[0];
        const props = { persistent: true, contentType: 'application/json', contentEncoding: 'UTF-8',
          priority: 1, timestamp: Math.floor(Date.now() / 1000), appId: 'REGARDS',
          correlationId: body.correlationId,
          headers: { 'regards.tenant': tenant, 'regards.converter': 'GSON', 'regards.type': RESPONSE_TYPE } };
        const pub = this.pub;
        try {
          pub.publish(this.exResp, '', Buffer.from(JSON.stringify(body)), props);
          await pub.waitForConfirms();
        } catch (e) {
          // the connection went away (retried after reconnect) or the
          // broker refused it (retried in a moment)
          if (this.pub === pub) setTimeout(() => this.flush(), 1000);
          break;
        }
        this.store.s.outbox.shift();
        this.store.save();
        this.log({ kind: 'published', tenant, exchange: this.exResp, body });
      }
    } finally {
      this.flushing = false;
    }
  }

  // ---- HTTP side

  serveHttp(port) {
    this.server = http.createServer((req, res) => {
      let status = 500, user = null;
      const done = (st) => { status = st; };
      try {
        user = this.route(req, res, done);
      } catch (e) {
        say('error', `${req.method} ${req.url}: ${e.message}`);
        if (!res.headersSent) { res.statusCode = 500; res.end(); }
        status = 500;
      }
      res.on('close', () => this.log({ kind: 'http', method: req.method, path: req.url, status, user }));
    });
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(Number(port) || 0, '127.0.0.1', () => {
        this.port = this.server.address().port;
        resolve();
      });
    });
  }

  reply(res, done, status, json) {
    done(status);
    if (json === undefined) {
      res.writeHead(status, { 'Content-Length': 0 });
      res.end();
      return;
    }
    const b = Buffer.from(JSON.stringify(json));
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': b.length });
    res.end(b);
  }

  // answer one HTTP request; returns the email claim (for the log)
  route(req, res, done) {
    const u = new URL(req.url, 'http://127.0.0.1');
    const p = u.pathname.replace(/^\/api\/v1\/rs-order(?=\/)/, '');
    const listing = p.match(/^\/orders\/(\d+)\/files\/available$/) ||
      p.match(/^\/orders\/(\d+)\/filesTask\/(\d+)\/files\/available$/);
    const file = p.match(/^\/orders\/files\/(\d+)$/);
    if (!listing && !file) { this.reply(res, done, 404, { messages: [`No handler for ${p}`] }); return null; }
    if (req.method !== 'GET' && req.method !== 'HEAD') { this.reply(res, done, 405); return null; }
    let claims = { tenant: null, role: 'PROJECT_ADMIN', email: null };
    if (!this.opt.noAuth) {
      const h = req.headers.authorization || '';
      claims = h.startsWith('Bearer') ? checkToken(this.key, h.slice(6).trim()) : null;
      if (!claims) {
        this.reply(res, done, 401, { status: 401, error: 'Unauthorized', path: u.pathname });
        return null;
      }
    }
    const owns = (o) => ['PROJECT_ADMIN', 'INSTANCE_ADMIN'].includes(claims.role) || o.user === claims.email;
    const tenantOk = (o) => this.opt.noAuth || o.tenant === claims.tenant;
    if (listing) {
      const o = this.store.s.orders[listing[1]];
      if (!o || !o.files || o.deleted || !tenantOk(o)) { this.reply(res, done, 404); return claims.email; }
      if (!owns(o)) { this.reply(res, done, 403); return claims.email; }
      const sub = listing[2] ? Number(listing[2]) : null;
      const avail = o.files.filter((f) => f.state === 'AVAILABLE' && (sub === null || f.subOrderId === sub));
      this.reply(res, done, 200, this.page(req, u, avail));
      return claims.email;
    }
    const id = Number(file[1]);
    const o = Object.values(this.store.s.orders).find((x) => x.files && x.files.some((f) => f.id === id));
    const f = o && o.files.find((x) => x.id === id);
    if (!o || o.deleted || !tenantOk(o)) {
      this.reply(res, done, 404, { messages: [`Data file with id: ${id} doesn't exist.`] });
      return claims.email;
    }
    if (!owns(o)) { this.reply(res, done, 403); return claims.email; }
    if (f.state === 'PENDING') { this.reply(res, done, 202); return claims.email; }
    if (o.downloadStatus) { this.reply(res, done, o.downloadStatus); return claims.email; }
    let data = fs.readFileSync(f.path);
    if (o.corrupt.includes(f.name) && data.length) { data = Buffer.from(data); data[0] ^= 0xff; }
    done(200);
    res.writeHead(200, { 'Content-Type': 'application/octet-stream',
      'Content-Disposition': `attachment; filename="${f.name.replace(/["\\]/g, '_')}"`,
      'Content-Length': data.length });
    if (req.method === 'HEAD') { res.end(); return claims.email; }
    res.on('finish', () => {
      // a stored file read completely becomes DOWNLOADED: it leaves the listing
      if (!o.keepDownloaded && f.state === 'AVAILABLE') { f.state = 'DOWNLOADED'; this.store.save(); }
    });
    res.end(data);
    return claims.email;
  }

  // one page as rs-order writes it (Gson over Spring HATEOAS' PagedModel)
  page(req, u, files) {
    const int = (v, d) => (v !== null && /^\d+$/.test(v) ? Number(v) : d);
    const number = int(u.searchParams.get('page'), 0);
    let size = int(u.searchParams.get('size'), 10);
    if (size < 1) size = 10;
    if (size > 2000) size = 2000;
    const sort = u.searchParams.get('sort') || 'id,asc';
    const sorted = files.slice().sort((a, b) => a.id - b.id);
    const totalPages = Math.ceil(sorted.length / size);
    const content = sorted.slice(number * size, (number + 1) * size).map((f) => ({
      content: { id: f.id, productId: f.productId, version: f.version,
        downloadUrl: `${this.projectHost()}/api/v1/rs-order/orders/files/${f.id}`,
        mimeType: 'application/octet-stream', checksum: f.md5, filesize: f.size, filename: f.name },
      links: [] }));
    const base = `http://${req.headers.host || `127.0.0.1:${this.port}`}${u.pathname}`;
    const link = (rel, n) => ({ rel, href: `${base}?page=${n}&size=${size}&sort=${sort}` });
    const hasPrev = number > 0, hasNext = number + 1 < totalPages;
    const links = [];
    if (hasPrev || hasNext) links.push(link('first', 0));
    if (hasPrev) links.push(link('prev', number - 1));
    links.push(link('self', number));
    if (hasNext) links.push(link('next', number + 1));
    if (hasPrev || hasNext) links.push(link('last', totalPages === 0 ? 0 : totalPages - 1));
    return { metadata: { size, totalElements: sorted.length, totalPages, number }, content, links };
  }

  async start() {
    if (!this.filesDir || !fs.statSync(this.filesDir).isDirectory())
      throw new Error('usage: rs-order-standin.js serve [options] FILES_DIR');
    if (!this.url) throw new Error('no AMQP URL (--url or FERRY_AMQP_URL)');
    await this.serveHttp(this.opt.port);
    for (const o of Object.values(this.store.s.orders)) this.arm(o);
    const stop = () => this.stop();
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    await this.amqpLoop(() => {
      if (this.opt.portFile) {
        fs.writeFileSync(`${this.opt.portFile}.tmp`, `${this.port}\n`);
        fs.renameSync(`${this.opt.portFile}.tmp`, this.opt.portFile);
      }
      say('info', `listening on 127.0.0.1:${this.port}`);
    });
  }

  stop() {
    if (this.stopping) return;
    this.stopping = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.store.save();
    if (this.server) this.server.close();
    const c = this.conn;
    (c ? c.close().catch(() => {}) : Promise.resolve()).then(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  }
}

async function main() {
  const [cmd, ...rest] = process.argv.slice(2);
  const opt = parseArgs(rest);
  if (cmd === 'token') {
    if (!opt.tenant || !opt.user) throw new Error('usage: rs-order-standin.js token --tenant T --user U [--role R] [--ttl S] [--secret S]');
    const exp = Math.floor(Date.now() / 1000) + Number(opt.ttl || 7200);
    console.log(makeToken(opt.secret || REGARDS_DEFAULT_KEY, { role: opt.role || 'REGISTERED_USER',
      tenant: opt.tenant, sub: opt.user, email: opt.user, exp }));
    return;
  }
  if (cmd !== 'serve') throw new Error('usage: rs-order-standin.js serve|token ...');
  await new StandIn(opt).start();
}

main().catch((e) => { say('fatal', e.message); process.exit(e.message.startsWith('usage') ? 100 : 111); });
