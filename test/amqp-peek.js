// amqp-peek: an independent AMQP client for the tests (amqplib, not
// librabbitmq), because amqp-get/amqp-consume do not show properties.
//   node amqp-peek.js bind URL QUEUE EXCHANGE     declare durable QUEUE bound to EXCHANGE
//   node amqp-peek.js get URL QUEUE N [SECONDS]   print N messages (acked) as JSON lines:
//     {"body":..., "properties":{...}, "headers":{...}, "exchange":..., "redelivered":...}
//   node amqp-peek.js decode URL QUEUE N CLASS [SECONDS]
//     as get, but each message decoded the way a subscriber built on the
//     REGARDS amqp-regards starter decodes it (JsonMessageConverters then
//     Gson2JsonMessageConverter.fromMessage): the converter from the header
//     regards.converter (or the older __ctype__), the class from __TypeId__,
//     regards.type or __gson_wrapped_type__, which must be CLASS (the one
//     the subscriber has); prints {"tenant","converter","type","event"};
//     exits 1 with the starter's error text on a message it cannot decode
//   node amqp-peek.js count URL QUEUE              print the number of ready messages
//   node amqp-peek.js publish URL EXCHANGE TENANT BODY [PRIORITY] [APP_ID]
//                                                  publish persistent, with those properties
//                                                  (TENANT "-": no regards.tenant header)
//   node amqp-peek.js regards URL                   declare regards.DLX and regards.DLQ as
//     every REGARDS microservice does (RegardsAmqpAdmin): fails on a mismatch
//   node amqp-peek.js rsdelivery URL [MICROSERVICE] [noprio]
//     declare what rs-delivery declares for its DeliveryRequestEventHandler
//     (RegardsAmqpAdmin.declareDeadLetter, declareQueue, declareBinding):
//     regards.DLX, regards.DLQ, the handler's queue
//     regards.broadcast.MICROSERVICE.<handler class> (MICROSERVICE default
//     rs-delivery) with x-max-priority 255 and its dedicated DLQ, bound to
//     the request exchange; noprio: the queue without x-max-priority (what
//     another declaration might leave there), for the mismatch test
//   node amqp-peek.js stream URL EXCHANGE [PER_SECOND] publish each stdin line
//     {"tenant":..., "body":...} persistent and confirmed, at most PER_SECOND a
//     second; when the broker goes away, reconnect and publish again what was
//     not confirmed (a broker restart loses nothing, may duplicate)
// Exits 1 when fewer than N messages arrived within SECONDS (default 20).
'use strict';
const path = require('path');
const amqp = require(path.join(process.env.FERRY_NODE_DIR ||
  path.join(__dirname, '..', '.deps', 'node'), 'node_modules', 'amqplib'));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function stream(url, exchange, perSecond) {
  const lines = require('fs').readFileSync(0, 'utf8').split('\n').filter((l) => l.trim());
  const gap = perSecond > 0 ? 1000 / perSecond : 0;
  let conn = null, ch = null, reconnects = 0;
  for (const line of lines) {
    const m = JSON.parse(line);
    for (;;) {
      try {
        if (!ch) {
          conn = await amqp.connect(url);
          conn.on('error', () => {});
          ch = await conn.createConfirmChannel();
          ch.on('error', () => {});
        }
        ch.publish(exchange, '', Buffer.from(m.body), { persistent: true,
          contentType: 'application/json', headers: { 'regards.tenant': m.tenant } });
        await ch.waitForConfirms();
        break;
      } catch (e) {
        reconnects++;
        try { if (conn) await conn.close(); } catch (e2) { /* gone already */ }
        conn = null; ch = null;
        await sleep(500);
      }
    }
    if (gap) await sleep(gap);
  }
  if (conn) await conn.close();
  console.error(`amqp-peek: ${lines.length} published, ${reconnects} reconnects`);
}

// JsonMessageConverters.fromMessage and selectConverter, then
// Gson2JsonMessageConverter.createTypeToken and fromMessage: throws what
// they throw (MessageConversionException's text).
function regardsDecode(m, cls) {
  const h = m.properties.headers || {};
  const str = (v) => (v === undefined || v === null ? undefined : String(v));
  let conv = str(h['regards.converter']);
  if (conv === undefined) conv = str(h.__ctype__);
  if (conv === undefined) throw new Error('Cannot determine JSON converter type');
  if (conv !== 'GSON' && conv !== 'JACKSON')
    throw new Error(`Cannot determine JSON converter for type "${conv}"`);
  if (conv === 'JACKSON') throw new Error('amqp-peek decodes the GSON path only');
  let type = str(h.__TypeId__);
  if (type === undefined) type = str(h['regards.type']);
  if (type === undefined) type = str(h.__gson_wrapped_type__);
  if (type === undefined || type !== cls)
    throw new Error('Error converting message : JAVA event type no found');
  const text = new TextDecoder('utf-8', { fatal: false }).decode(m.content);
  return { tenant: str(h['regards.tenant']), converter: conv, type, event: JSON.parse(text) };
}

async function main() {
  const [cmd, url, queue, arg, secs] = process.argv.slice(2);
  if (cmd === 'stream') {
    await stream(url, queue, Number(arg || 0));
    process.exit(0);
  }
  const conn = await amqp.connect(url);
  const ch = await conn.createChannel();
  let rc = 0;
  if (cmd === 'regards') {
    await ch.assertExchange('regards.DLX', 'topic', { durable: true });
    await ch.assertQueue('regards.DLQ', { durable: true, maxPriority: 255 });
    await ch.bindQueue('regards.DLQ', 'regards.DLX', 'regards.DLQ');
  } else if (cmd === 'rsdelivery') {
    const qn = 'regards.broadcast.' + (queue || 'rs-delivery') +
      '.fr.cnes.regards.modules.delivery.service.submission.create.amqp.DeliveryRequestEventHandler';
    const rx = 'regards.broadcast.fr.cnes.regards.modules.delivery.amqp.input.DeliveryRequestDtoEvent';
    await ch.assertExchange('regards.DLX', 'topic', { durable: true });
    await ch.assertQueue('regards.DLQ', { durable: true, maxPriority: 255 });
    await ch.bindQueue('regards.DLQ', 'regards.DLX', 'regards.DLQ');
    await ch.assertQueue(qn + '.DLQ', { durable: true, maxPriority: 255 });
    await ch.bindQueue(qn + '.DLQ', 'regards.DLX', qn + '.DLQ');
    const opts = { durable: true, deadLetterExchange: 'regards.DLX', deadLetterRoutingKey: qn + '.DLQ' };
    if (arg !== 'noprio') opts.maxPriority = 255;
    await ch.assertQueue(qn, opts);
    await ch.assertExchange(rx, 'fanout', { durable: true });
    await ch.bindQueue(qn, rx, '');
  } else if (cmd === 'bind') {
    await ch.assertQueue(queue, { durable: true });
    await ch.bindQueue(queue, arg, '');
  } else if (cmd === 'publish') {
    const [, , , , , tenant, body, prio, app] = process.argv;
    const opts = { persistent: true, contentType: 'application/json',
      headers: tenant === '-' ? {} : { 'regards.tenant': tenant } };
    if (prio !== undefined && prio !== '') opts.priority = Number(prio);
    if (app) opts.appId = app;
    const cch = await conn.createConfirmChannel();
    cch.publish(queue, '', Buffer.from(body), opts);
    await cch.waitForConfirms();
    await cch.close();
  } else if (cmd === 'count') {
    const q = await ch.checkQueue(queue);
    console.log(q.messageCount);
  } else if (cmd === 'get' || cmd === 'decode') {
    const want = Number(arg);
    const cls = cmd === 'decode' ? secs : undefined;
    const wait = cmd === 'decode' ? process.argv[7] : secs;
    const deadline = Date.now() + 1000 * Number(wait || 20);
    let got = 0;
    while (got < want && Date.now() < deadline) {
      const m = await ch.get(queue, { noAck: true });
      if (!m) { await new Promise((r) => setTimeout(r, 50)); continue; }
      if (cmd === 'decode') {
        try {
          console.log(JSON.stringify(regardsDecode(m, cls)));
        } catch (e) {
          console.error('amqp-peek: ' + e.message);
          rc = 1;
        }
        got++;
        continue;
      }
      const p = Object.assign({}, m.properties);
      const headers = p.headers || {};
      delete p.headers;
      for (const k of Object.keys(p)) if (p[k] === undefined) delete p[k];
      console.log(JSON.stringify({ body: m.content.toString('utf8'), properties: p, headers,
        exchange: m.fields.exchange, redelivered: m.fields.redelivered }));
      got++;
    }
    if (got < want) {
      console.error(`amqp-peek: ${got} of ${want} messages within ${wait || 20} s`);
      rc = 1;
    }
  } else {
    console.error('usage: amqp-peek.js bind|get|count URL QUEUE ...');
    rc = 100;
  }
  await ch.close();
  await conn.close();
  process.exit(rc);
}

main().catch((e) => { console.error('amqp-peek: ' + e.message); process.exit(111); });
