// A Node `ws` client driven by the interop suite: one JSON command per line
// on stdin, one JSON answer per line on stdout ({"ok": ...} or {"error": ...}).
// Binary payloads travel base64-encoded.
'use strict';
const fs = require('fs');
const net = require('net');
const readline = require('readline');
const { WebSocket } = require('ws');

let ws = null;
let tcp = null;  // the TCP socket under TLS for wss (ws's own socket is then a TLSSocket)
let inbox = [];
let waiting = null;
let closed = null;

function deliver(item) {
  if (waiting) { const w = waiting; waiting = null; w(item); } else inbox.push(item);
}

// `ca`: the path of the test CA's PEM, trusted for a wss:// url.  The TLS
// connection runs over a TCP socket made here, so that abort can reset it.
function open({ url, protocols, ca }) {
  const options = { perMessageDeflate: true, maxPayload: 16 * 1024 * 1024 };
  if (ca) {
    const { hostname, port } = new URL(url);
    tcp = net.connect({ host: hostname, port: Number(port) });
    Object.assign(options, { ca: fs.readFileSync(ca), socket: tcp });
  }
  ws = new WebSocket(url, protocols, options);
  closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  ws.on('message', (data, isBinary) => deliver({ binary: isBinary, data: isBinary ? data.toString('base64') : data.toString() }));
  let extensions = null;
  ws.on('upgrade', (response) => { extensions = response.headers['sec-websocket-extensions'] || null; });
  return new Promise((resolve, reject) => {
    ws.on('open', () => resolve({ protocol: ws.protocol || null, extensions }));
    ws.on('error', reject);
  });
}

function payload({ data, binary }) {
  return binary ? Buffer.from(data, 'base64') : data;
}

async function send(args) {
  const whole = payload(args);
  const count = args.fragments || 1;
  const step = Math.ceil(whole.length / count);
  for (let i = 0; i < count; i++) {
    const part = whole.slice(i * step, (i + 1) * step);
    await new Promise((resolve, reject) => ws.send(part, { binary: args.binary, fin: i === count - 1 }, (e) => (e ? reject(e) : resolve())));
  }
  return null;
}

function recv() {
  if (inbox.length) return Promise.resolve(inbox.shift());
  return new Promise((resolve) => { waiting = resolve; });
}

function ping({ data }) {
  return new Promise((resolve) => {
    ws.once('pong', (body) => resolve(body.toString('base64')));
    ws.ping(Buffer.from(data, 'base64'));
  });
}

function close({ code, reason }) {
  ws.close(code, reason);
  return closed;
}

function abort() {
  (tcp || ws._socket).resetAndDestroy();
  return null;
}

const ops = { open, send, recv, ping, close, closed: () => closed, abort };

readline.createInterface({ input: process.stdin }).on('line', async (line) => {
  const { op, ...args } = JSON.parse(line);
  try {
    process.stdout.write(JSON.stringify({ ok: await ops[op](args) }) + '\n');
  } catch (e) {
    process.stdout.write(JSON.stringify({ error: String(e && e.message || e) }) + '\n');
  }
});
