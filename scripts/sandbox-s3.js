#!/usr/bin/env node
// sandbox-s3.js: run the s3rver fake S3 server (checks SigV4; credentials
// S3RVER/S3RVER) on 127.0.0.1 for ferry-sandbox(1). Prints "ready PORT" on
// stdout once it accepts connections; exits 0 on SIGTERM or SIGINT.
//   sandbox-s3.js PORT DATADIR [BUCKET...]
// Buckets: "deliveries", the BUCKET arguments, and $FERRY_S3_BUCKETS
// (separated by commas or spaces). PORT 0 picks a free port.
'use strict'

const fs = require('node:fs')
const path = require('node:path')

const prog = 'sandbox-s3'
const usage = 'usage: sandbox-s3.js PORT DATADIR [BUCKET...]'

function die(code, msg) {
  process.stderr.write(`${prog}: fatal: ${msg}\n`)
  process.exit(code)
}

// The node_modules holding s3rver: $FERRY_NODE_DIR, else the project's .deps
// seen from build/bin (../../.deps/node) or from scripts (../.deps/node).
function findS3rver() {
  const candidates = process.env.FERRY_NODE_DIR
    ? [process.env.FERRY_NODE_DIR]
    : [path.join(__dirname, '..', '..', '.deps', 'node'), path.join(__dirname, '..', '.deps', 'node')]
  for (const dir of candidates) {
    const mod = path.join(dir, 'node_modules', '@20minutes', 's3rver')
    if (fs.existsSync(path.join(mod, 'package.json'))) return mod
  }
  die(100, `@20minutes/s3rver not found in ${candidates.join(' or ')}: run scripts/install-deps`)
}

// s3rver's logger forces ANSI colours even into a log file: strip them.
function stripColours(stream) {
  const write = stream.write.bind(stream)
  stream.write = (chunk, ...rest) =>
    write(typeof chunk === 'string' ? chunk.replace(/\x1b\[[0-9;]*m/g, '') : chunk, ...rest)
}

function parseArgs(argv) {
  if (argv.length < 2 || argv[0] === '-h') die(100, usage)
  const port = Number(argv[0])
  if (!/^[0-9]+$/.test(argv[0]) || port > 65535) die(100, `bad port: ${argv[0]}`)
  const directory = path.resolve(argv[1])
  const extra = (process.env.FERRY_S3_BUCKETS || '').split(/[\s,]+/)
  const buckets = [...new Set(['deliveries', ...argv.slice(2), ...extra].filter((b) => b !== ''))]
  for (const b of buckets) {
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(b)) die(100, `bad bucket name: ${b}`)
  }
  return { port, directory, buckets }
}

async function main() {
  const { port, directory, buckets } = parseArgs(process.argv.slice(2))
  const S3rver = require(findS3rver())
  stripColours(process.stdout)
  stripColours(process.stderr)
  fs.mkdirSync(directory, { recursive: true })

  const server = new S3rver({
    port,
    address: '127.0.0.1',
    directory,
    silent: process.env.FERRY_S3_QUIET === '1',
    configureBuckets: buckets.map((name) => ({ name })),
  })
  // s3rver reports listen errors (EADDRINUSE) as an 'error' event, not
  // through run(): catch them here so the caller gets one clear line.
  process.on('uncaughtException', (err) => die(111, `${err.code || 'error'}: ${err.message}`))

  const addr = await server.run()
  let stopping = false
  const stop = () => {
    if (stopping) return
    stopping = true
    // Idle keep-alive connections would hold close() open: drop them.
    server.httpServer.closeAllConnections()
    server.close().then(
      () => process.exit(0),
      () => process.exit(0)
    )
    setTimeout(() => process.exit(0), 2000).unref()
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  process.stdout.write(`ready ${addr.port}\n`)
}

main().catch((err) => die(111, err.message))
