// rs-admin-standin: a protocol-faithful stand-in for the one REST call
// rs-delivery makes to the REGARDS rs-admin microservice, for tests only
// (never installed): UserVerifyService's IProjectUsersClient
// .retrieveProjectUserByEmail, GET /users/email/{email}, served as
// rs-admin's ProjectUsersController serves it (RegardsOss/regards-backend:
// rs-admin accessrights-rest, accessrights-client, accessrights-service;
// rs-microservice security-regards, module-regards). See
// test/rs-delivery-protocol.md §4.
//
//   node rs-admin-standin.js serve [options]
//     --port N           HTTP port on 127.0.0.1 (default 0: any free port)
//     --port-file FILE   written with the port once HTTP listens (tests wait for it)
//     --config FILE      the projects' users and the behaviour, a JSON file
//                        re-read at each request (below)
//     --log FILE         NDJSON record of every request answered
//     --secret S         HS512 JWT key (default: REGARDS' built-in default key)
//
// Config file (absent: no project has users):
//   {"projects": {"p1": ["ana@example.org"], ...},   each tenant's users
//    "status": 503,          answer every request with this status instead
//    "delayMs": 0}           wait this long before answering
//
// What it does, as rs-admin does:
// - the tenant is the JWT's "tenant" claim (REGARDS' multitenancy: the
//   token chooses the project), the caller its "role" claim;
// - no token, a bad signature, an expired token or a missing claim
//   (tenant, sub, role, email: JWTService.parseToken): 401;
// - the endpoint's @ResourceAccess role is EXPLOIT; a system role
//   ROLE_SYS_<microservice> passes every endpoint (SystemAccessVoter), and
//   so do the roles above EXPLOIT; any other role: 403;
// - a user of the project: 200 and the EntityModel<ProjectUser>
//   ({"content": {...}, "links": [...]}); another: 404 and the
//   ServerErrorResponse of GlobalControllerAdvice's EntityNotFoundException,
//   {"messages": ["Entity ...ProjectUser with id : <email> doesn't exist"]};
// - any other path: 404.
// Log lines (--log): {"at","method","path","email","tenant","sub","role","status"}.
'use strict';
const fs = require('fs');
const http = require('http');
const crypto = require('crypto');

const REGARDS_DEFAULT_KEY = '!!!!!==========abcdefghijklmnopqrstuvwxyz0123456789==========!!!!!';
const PROJECT_USER = 'fr.cnes.regards.modules.accessrights.domain.projects.ProjectUser';
// DefaultRole (security-config role/DefaultRole.java, highest first there),
// lowest first here; EXPLOIT and above may call the endpoint
const ROLES = ['PUBLIC', 'REGISTERED_USER', 'ADMIN', 'EXPLOIT', 'PROJECT_ADMIN', 'INSTANCE_ADMIN'];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const say = (level, msg) => process.stderr.write(`rs-admin-standin: ${level}: ${msg}\n`);

function parseArgs(argv) {
  const o = { positional: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      o[a.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase())] = argv[++i];
    } else o.positional.push(a);
  }
  return o;
}

// The claims of a valid token (HS512 keyed with the secret's UTF-8 bytes,
// the four claims JWTService.parseToken requires, not expired), or null.
// The same check as test/rs-order-standin.js.
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

// RoleAuthority.isSysRole, or a DefaultRole at least EXPLOIT
function mayCall(role) {
  return role.startsWith('ROLE_SYS_') || ROLES.indexOf(role) >= ROLES.indexOf('EXPLOIT');
}

function readConfig(file) {
  if (!file || !fs.existsSync(file)) return {};
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

// EntityModel<ProjectUser> as rs-admin writes it (the fields a client reads)
function projectUser(id, email, tenant) {
  return {
    content: { id, email, firstName: email.split('@')[0], lastName: '', status: 'ACCESS_GRANTED',
      role: { id: 3, name: 'REGISTERED_USER', isDefault: true, isNative: true },
      accessGroups: ['Public'], licenseAccepted: true, origin: 'Regards', metadata: [] },
    links: [{ rel: 'self', href: `http://127.0.0.1/users/${id}?tenant=${encodeURIComponent(tenant)}` }],
  };
}

function serve(opt) {
  const key = opt.secret || REGARDS_DEFAULT_KEY;
  const log = (rec) => {
    if (opt.log) fs.appendFileSync(opt.log, `${JSON.stringify({ at: new Date().toISOString(), ...rec })}\n`);
  };
  const reply = (res, status, json) => {
    const b = json === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(json));
    const h = { 'Content-Length': b.length };
    if (json !== undefined) h['Content-Type'] = 'application/json';
    res.writeHead(status, h);
    res.end(b);
  };
  const server = http.createServer(async (req, res) => {
    const u = new URL(req.url, 'http://127.0.0.1');
    // rs-admin's own path, or through REGARDS' gateway
    const p = u.pathname.replace(/^\/api\/v1\/rs-admin(?=\/)/, '');
    const m = p.match(/^\/users\/email\/([^/]+)$/);
    const rec = { method: req.method, path: u.pathname };
    let status = 404, body = { messages: [`No handler for ${p}`] };
    try {
      const cfg = readConfig(opt.config);
      if (cfg.delayMs) await sleep(cfg.delayMs);
      const h = req.headers.authorization || '';
      const claims = h.startsWith('Bearer ') ? checkToken(key, h.slice(7).trim()) : null;
      if (claims) Object.assign(rec, { tenant: claims.tenant, sub: claims.sub, role: claims.role });
      if (m) {
        const email = decodeURIComponent(m[1]);
        rec.email = email;
        const users = claims && cfg.projects && cfg.projects[claims.tenant] || [];
        if (cfg.status) [status, body] = [cfg.status, { messages: [`status ${cfg.status} (config)`] }];
        else if (!claims) [status, body] = [401, { status: 401, error: 'Unauthorized', path: u.pathname }];
        else if (!mayCall(claims.role)) [status, body] = [403, { messages: ['Access denied'] }];
        else if (req.method !== 'GET') [status, body] = [405, undefined];
        else if (users.includes(email)) [status, body] = [200, projectUser(users.indexOf(email) + 1, email, claims.tenant)];
        else body = { messages: [`Entity ${PROJECT_USER} with id : ${email} doesn't exist`] };
      }
    } catch (e) {
      say('error', e.message);
      [status, body] = [500, { messages: [e.message] }];
    }
    rec.status = status;
    log(rec);
    reply(res, status, body);
  });
  server.listen(Number(opt.port || 0), '127.0.0.1', () => {
    const port = server.address().port;
    if (opt.portFile) {
      fs.writeFileSync(`${opt.portFile}.tmp`, `${port}\n`);
      fs.renameSync(`${opt.portFile}.tmp`, opt.portFile);
    }
    say('info', `listening on http://127.0.0.1:${port}`);
  });
  const stop = () => {
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

function main() {
  const opt = parseArgs(process.argv.slice(2));
  if (opt.positional[0] !== 'serve') throw new Error('usage: rs-admin-standin.js serve [options]');
  serve(opt);
}

try {
  main();
} catch (e) {
  say('error', e.message);
  process.exit(2);
}
