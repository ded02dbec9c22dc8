#!/usr/bin/env node
// hostile-http: a small HTTP source for test/hostile.bats. GET /f/NAME
// serves DIR/NAME; GET /go?URL answers 302 to URL (a redirect anywhere);
// every request line is appended to LOG, so a test can tell that a URL was
// never asked for.
//   node hostile-http.js DIR LOG     prints "ready PORT" once listening
'use strict';
const fs = require('fs');
const http = require('http');
const path = require('path');

const [dir, log] = process.argv.slice(2);
if (!dir || !log) {
  process.stderr.write('usage: hostile-http.js DIR LOG\n');
  process.exit(100);
}

const server = http.createServer((req, res) => {
  fs.appendFileSync(log, `${req.method} ${req.headers.host} ${req.url}\n`);
  if (req.url.startsWith('/go?')) {
    res.writeHead(302, { Location: decodeURIComponent(req.url.slice(4)) });
    return res.end();
  }
  const name = path.basename(decodeURIComponent(req.url.replace(/^\/f\//, '')));
  fs.readFile(path.join(dir, name), (err, data) => {
    if (err) {
      res.writeHead(404);
      return res.end();
    }
    res.writeHead(200, { 'Content-Length': data.length });
    res.end(data);
  });
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`ready ${server.address().port}\n`));
process.on('SIGTERM', () => process.exit(0));
