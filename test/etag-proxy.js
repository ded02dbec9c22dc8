#!/usr/bin/env node
// etag-proxy: an HTTP proxy in front of the sandbox's S3 server that lies
// about what it stored: every PUT answered 2xx gets the ETag below (a well
// formed md5 of nothing it received), or the ETAG given ("-": the server's
// own). With CORRUPT, the first PUT whose URL holds that string has one
// byte of its body changed on the way (once), as a bad link would
// ("-": none). With COMPLETE_ETAG, the answer to a CompleteMultipartUpload
// (a POST with uploadId) names that ETag instead of the server's.
// Everything else passes unchanged, Host header included, so SigV4
// signatures still verify.
//   node etag-proxy.js TARGET_PORT [ETAG|- [CORRUPT|- [COMPLETE_ETAG]]]
// Prints "ready PORT" once listening, "corrupted URL" when it did. Exits 0
// on SIGTERM.
'use strict';
const http = require('http');
const { Transform } = require('stream');

const WRONG = process.argv[3] !== undefined ? process.argv[3] : '"0123456789abcdef0123456789abcdef"';
const CORRUPT = process.argv[4] === '-' ? undefined : process.argv[4];
const COMPLETE_ETAG = process.argv[5];
const target = Number(process.argv[2]);
if (!(target > 0 && target < 65536)) {
  process.stderr.write('usage: etag-proxy.js TARGET_PORT [ETAG|- [CORRUPT|- [COMPLETE_ETAG]]]\n');
  process.exit(100);
}
let corrupted = false;

// flips the first byte of the body it passes
function flipFirst() {
  let done = false;
  return new Transform({
    transform(chunk, enc, cb) {
      if (!done && chunk.length > 0) {
        chunk = Buffer.from(chunk);
        chunk[0] ^= 0xff;
        done = true;
      }
      cb(null, chunk);
    },
  });
}

const server = http.createServer((req, res) => {
  const up = http.request({ host: '127.0.0.1', port: target, method: req.method, path: req.url,
    headers: req.headers }, (r) => {
    const headers = { ...r.headers };
    if (req.method === 'PUT' && r.statusCode < 300 && headers.etag && WRONG !== '-') headers.etag = WRONG;
    if (COMPLETE_ETAG && req.method === 'POST' && req.url.includes('uploadId=') && r.statusCode < 300) {
      const body = [];
      r.on('data', (c) => body.push(c));
      r.on('end', () => {
        const xml = Buffer.concat(body).toString('utf8')
          .replace(/<ETag>[^<]*<\/ETag>/, `<ETag>&quot;${COMPLETE_ETAG}&quot;</ETag>`);
        delete headers['content-length'];
        delete headers['transfer-encoding'];
        res.writeHead(r.statusCode, { ...headers, 'content-length': Buffer.byteLength(xml) });
        res.end(xml);
      });
      return;
    }
    res.writeHead(r.statusCode, headers);
    r.pipe(res);
  });
  up.on('error', () => res.destroy());
  if (CORRUPT && !corrupted && req.method === 'PUT' && req.url.includes(CORRUPT)) {
    corrupted = true;
    process.stdout.write(`corrupted ${req.url}\n`);
    req.pipe(flipFirst()).pipe(up);
  } else {
    req.pipe(up);
  }
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`ready ${server.address().port}\n`));
process.on('SIGTERM', () => process.exit(0));
