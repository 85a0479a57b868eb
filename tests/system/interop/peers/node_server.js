// The scripted WebSocket server of the interop suite, on Node's `ws`.
// Commands and reports are described in tests/interop/scripted.py; this
// file answers them the same way the Python servers do.
'use strict';
const { WebSocketServer } = require('ws');

const PROTOCOLS = ['chat.v2', 'chat.v1'];
const closed = new Map();   // connection id -> Promise of [code, reason]
const settle = new Map();   // connection id -> resolve function

function pattern(index, size) {
  return String(index % 10).repeat(size);
}

function command(ws, text) {
  const [verb, ...args] = text.split(' ');
  if (verb === '!info') {
    ws.send(JSON.stringify({ subprotocol: ws.protocol || null, extensions: ws.extensionsHeader || null }));
  } else if (verb === '!burst') {
    for (let i = 0; i < Number(args[0]); i++) ws.send(String(i));
  } else if (verb === '!fragments') {
    const count = Number(args[0]);
    for (let i = 0; i < count; i++) ws.send(pattern(i, Number(args[1])), { fin: i === count - 1 });
  } else if (verb === '!ping') {
    const payload = args.join(' ');
    ws.once('pong', (data) => ws.send(`pong ${data.toString()}`));
    ws.ping(payload);
  } else if (verb === '!close') {
    ws.close(Number(args[0]), args.slice(1).join(' '));
  } else if (verb === '!report') {
    report(ws, args[0]);
  }
}

function report(ws, id) {
  const done = closed.get(id) || Promise.resolve(null);
  const timeout = new Promise((resolve) => setTimeout(() => resolve(null), 5000));
  Promise.race([done, timeout]).then((close) => ws.send(JSON.stringify({ close })));
}

function track(id) {
  closed.set(id, new Promise((resolve) => settle.set(id, resolve)));
}

const server = new WebSocketServer({
  host: '127.0.0.1',
  port: 0,
  perMessageDeflate: true,
  maxPayload: 16 * 1024 * 1024,
  handleProtocols: (offered) => PROTOCOLS.find((p) => offered.has(p)) || false,
});

server.on('headers', (headers, request) => {
  request.extensionsHeader = (headers.find((h) => /^sec-websocket-extensions:/i.test(h)) || '')
    .replace(/^[^:]*:\s*/, '') || null;
});

server.on('connection', (ws, request) => {
  ws.extensionsHeader = request.extensionsHeader;
  const id = new URL(request.url, 'http://x').searchParams.get('id') || '';
  track(id);
  ws.on('message', (data, isBinary) => {
    if (!isBinary && data.toString().startsWith('!')) command(ws, data.toString());
    else ws.send(data, { binary: isBinary });
  });
  ws.on('close', (code, reason) => settle.get(id)([code, reason.toString()]));
});

server.on('listening', () => console.log(JSON.stringify({ port: server.address().port })));
