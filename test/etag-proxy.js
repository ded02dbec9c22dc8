#!/usr/bin/env node
// etag-proxy: an HTTP proxy in front of the sandbox's S3 server that lies
// about what it stored: every PUT answered 2xx gets the ETag below (a well
// formed md5 of nothing it received), or the ETAG given. Everything else
// passes unchanged, Host header included, so SigV4 signatures still verify.
//   node etag-proxy.js TARGET_PORT [ETAG]   prints "ready PORT" once listening
// Exits 0 on SIGTERM.
'use strict';
const http = require('http');

const WRONG = process.argv[3] !== undefined ? process.argv[3] : '"0123456789abcdef0123456789abcdef"';
const target = Number(process.argv[2]);
if (!(target > 0 && target < 65536)) {
  process.stderr.write('usage: etag-proxy.js TARGET_PORT [ETAG]\n');
  process.exit(100);
}

const server = http.createServer((req, res) => {
  const up = http.request({ host: '127.0.0.1', port: target, method: req.method, path: req.url,
    headers: req.headers }, (r) => {
    const headers = { ...r.headers };
    if (req.method === 'PUT' && r.statusCode < 300 && headers.etag) headers.etag = WRONG;
    res.writeHead(r.statusCode, headers);
    r.pipe(res);
  });
  up.on('error', () => res.destroy());
  req.pipe(up);
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`ready ${server.address().port}\n`));
process.on('SIGTERM', () => process.exit(0));
