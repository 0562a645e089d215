// gRPC-Web (application/grpc-web+proto) over HTTP/1.1 with Node's fetch, framed by hand as the
// gRPC-Web protocol describes it: against the real `wasmtime serve` running the artifact built for
// it, and against the reference host.
'use strict';

const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const protoLoader = require('@grpc/proto-loader');
const { defineMatrix } = require('./matrix.js');
const support = require('./support.js');

const SERVICE = 'zitadel.auth.v1.AuthService';
const packageDefinition = protoLoader.loadSync('phone.proto', {
  // Imports (zitadel/change/v1/change.proto, ...) resolve against proto/, as protox does.
  includeDirs: [path.join(support.ROOT, 'proto')],
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});
const methods = packageDefinition[SERVICE];

/// One gRPC-Web frame: flag byte, 4-byte big-endian length, payload.
function frame(flag, payload) {
  const head = Buffer.alloc(5);
  head[0] = flag;
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

/// Splits a gRPC-Web body into message payloads and the trailer block's fields.
function unframe(body) {
  const messages = [];
  const trailers = {};
  let at = 0;
  while (at < body.length) {
    if (at + 5 > body.length) throw new Error(`truncated frame head at ${at}`);
    const flag = body[at];
    const length = body.readUInt32BE(at + 1);
    const payload = body.subarray(at + 5, at + 5 + length);
    if (payload.length !== length) throw new Error(`truncated frame at ${at}`);
    at += 5 + length;
    if (flag & 0x80) {
      for (const line of payload.toString('latin1').split('\r\n')) {
        if (!line) continue;
        const colon = line.indexOf(':');
        if (colon < 0) throw new Error(`bad trailer line ${JSON.stringify(line)}`);
        trailers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
    } else if (flag === 0) {
      messages.push(payload);
    } else {
      throw new Error(`unexpected frame flag ${flag}`);
    }
  }
  return { messages, trailers };
}

/// A gRPC-Web client over fetch (HTTP/1.1) with the answer shape the matrix wants.
function grpcWebClient(url) {
  return {
    call: async (method, request, bearer) => {
      const headers = {
        'content-type': 'application/grpc-web+proto',
        accept: 'application/grpc-web+proto',
        'x-grpc-web': '1',
      };
      if (bearer) headers.authorization = `Bearer ${bearer}`;
      const response = await fetch(`${url}/${SERVICE}/${method}`, {
        method: 'POST',
        headers,
        body: frame(0, methods[method].requestSerialize(request)),
        signal: AbortSignal.timeout(support.CALL_LIMIT_MS),
      });
      const body = Buffer.from(await response.arrayBuffer());
      if (response.status !== 200) {
        throw new Error(`HTTP ${response.status}: ${body.toString('utf8')}`);
      }
      const { messages, trailers } = unframe(body);
      // A Trailers-Only answer may carry the status in the HTTP headers instead.
      const field = (name) => trailers[name] ?? response.headers.get(name) ?? undefined;
      const code = Number(field('grpc-status'));
      if (Number.isNaN(code)) throw new Error(`no grpc-status: ${JSON.stringify(trailers)}`);
      if (code === 0) {
        if (messages.length !== 1) throw new Error(`${messages.length} messages in a unary answer`);
        return { ok: true, response: methods[method].responseDeserialize(messages[0]) };
      }
      const details = field('grpc-status-details-bin');
      return {
        ok: false,
        code,
        message: decodeURIComponent(field('grpc-message') ?? ''),
        status: details ? support.decodeStatus(Buffer.from(details, 'base64')) : null,
      };
    },
  };
}

/// A loopback HTTP server that records the SMS webhook calls (ZITADEL's webhook body).
async function webhookReceiver() {
  const received = [];
  const server = http.createServer((request, response) => {
    const chunks = [];
    request.on('data', (chunk) => chunks.push(chunk));
    request.on('end', () => {
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        received.push({ phone: body.contextInfo.recipientPhoneNumber, code: body.args.code });
      } catch (error) {
        received.push({ error: String(error) });
      }
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end('{}');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    count: () => received.length,
    code: async (phone, after) => {
      const deadline = Date.now() + support.CALL_LIMIT_MS;
      for (;;) {
        const hit = received.slice(after).reverse().find((r) => r.phone === phone);
        if (hit) return hit.code;
        if (Date.now() > deadline) throw new Error(`no SMS to ${phone}: ${JSON.stringify(received)}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(resolve);
      }),
  };
}

function wasmtimeBinary() {
  if (process.env.WASMTIME) return process.env.WASMTIME;
  const found = spawnSync('sh', ['-c', 'command -v wasmtime'], { encoding: 'utf8' });
  if (found.status === 0 && found.stdout.trim()) return found.stdout.trim();
  const cargoBin = path.join(os.homedir(), '.cargo', 'bin', 'wasmtime');
  if (fs.existsSync(cargoBin)) return cargoBin;
  throw new Error('wasmtime is not installed: cargo install wasmtime-cli@48.0.8 --locked');
}

/// A free loopback port (closed again before `wasmtime serve` binds it).
async function freePort() {
  const server = http.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/// Waits (bounded) until something accepts connections on `port`.
async function waitForPort(server, port) {
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (server.exited) throw new Error(`${server.name} exited:\n${server.log}`);
    const open = await new Promise((resolve) => {
      const socket = require('node:net').connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`${server.name} did not listen:\n${server.log}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

defineMatrix('gRPC-Web over HTTP/1.1 on wasmtime serve', async () => {
  const key = support.signingKey();
  const webhook = await webhookReceiver();
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'set-my-phone-interop-'));
  const artifact =
    process.env.SET_MY_PHONE_SERVE_WASM ||
    path.join(support.ROOT, 'target', 'artifacts', 'set-my-phone-wasmtime-serve.wasm');
  const env = {
    ...support.componentEnv(key),
    SMS_PROVIDER: 'webhook',
    SMS_WEBHOOK_URL: `${webhook.url}/sms`,
    SMS_WEBHOOK_SIGNING_KEY: 'interop-signing-key',
  };
  const port = await freePort();
  const args = ['serve', '--addr', `127.0.0.1:${port}`, '-Scli', '--dir', `${data}::/data`];
  for (const [name, value] of Object.entries(env)) args.push('--env', `${name}=${value}`);
  args.push(artifact);
  const server = new support.Server('wasmtime serve', wasmtimeBinary(), args, {});
  const cleanup = async () => {
    await server.stop();
    await webhook.close();
    fs.rmSync(data, { recursive: true, force: true });
  };
  try {
    await waitForPort(server, port);
  } catch (error) {
    await cleanup();
    throw error;
  }
  return {
    client: grpcWebClient(`http://127.0.0.1:${port}`),
    key,
    org: support.ORG,
    smsCount: async () => webhook.count(),
    code: (phone, after) => webhook.code(phone, after),
    stop: cleanup,
  };
});

defineMatrix('gRPC-Web over HTTP/1.1 on the reference host', async () => {
  const key = support.signingKey();
  const host = await support.startHost(support.componentEnv(key));
  return {
    client: grpcWebClient(host.url),
    key,
    org: support.ORG,
    smsCount: async () => host.smsLines().length,
    code: (phone, after) => host.code(phone, after),
    stop: () => host.stop(),
  };
});
