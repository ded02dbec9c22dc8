// responses-check: do the responses read off the response exchange agree
// with what each request had to end in?
//   node responses-check.js RESPONSES EXPECT
// RESPONSES: amqp-peek.js "get" lines; EXPECT: lines "TENANT CID WANT", WANT
// one of DONE, DENIED, ERROR, or EXPIRED (ERROR with errorType EXPIRED).
// Every request must have a terminal response of the kind it wants, and a
// request answered twice (a crash between publish and confirm) must have
// been answered the same both times. Prints the problems, then a summary
// line; exits 1 on any problem.
'use strict';
const fs = require('fs');
const [resp, expect] = process.argv.slice(2);
const lines = (f) => fs.readFileSync(f, 'utf8').split('\n').filter(Boolean);
const terminal = new Map();
let total = 0, dup = 0, granted = 0, bad = 0, missing = 0;
for (const l of lines(resp)) {
  const m = JSON.parse(l), b = JSON.parse(m.body);
  if (b.status === 'GRANTED') { granted++; continue; }
  const key = m.headers['regards.tenant'] + ' ' + b.correlationId;
  total++;
  const was = terminal.get(key);
  if (was === undefined) { terminal.set(key, m.body); continue; }
  dup++;
  if (was !== m.body) { console.log(`contradiction ${key}: ${was} then ${m.body}`); bad++; }
}
for (const l of lines(expect)) {
  const [t, c, want] = l.split(' ');
  const body = terminal.get(t + ' ' + c);
  if (!body) { console.log(`no terminal response for ${t} ${c}`); missing++; continue; }
  const b = JSON.parse(body);
  const ok = want === 'EXPIRED' ? b.status === 'ERROR' && b.errorType === 'EXPIRED' : b.status === want;
  if (!ok) { console.log(`${t} ${c}: ${body}, want ${want}`); bad++; }
}
console.log(`responses: ${granted} GRANTED, ${total} terminal, ${dup} duplicate terminal, ${missing} missing`);
process.exit(bad || missing ? 1 : 0);
