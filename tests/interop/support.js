// Shared set-up for the interop tests: starts a server process, mints tokens, reads the codes the
// host prints, and decodes google.rpc.Status with its zitadel.v1.ErrorDetail.
'use strict';

const { spawn, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..');
const ISSUER = 'https://issuer.interop.test';
const ORG = 'interop-org';
const CODE_SECRET = 'interop-secret-0123456789';
const DETAIL_TYPE = 'type.googleapis.com/zitadel.v1.ErrorDetail';

/// How long a server may take to start (the first start compiles the component).
const START_LIMIT_MS = 120_000;
/// How long one call may take.
const CALL_LIMIT_MS = 15_000;

function base64url(data) {
  return Buffer.from(data).toString('base64url');
}

/// An Ed25519 key and the JWKS that trusts it.
function signingKey(kid = 'interop') {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
  const jwk = publicKey.export({ format: 'jwk' });
  const jwks = JSON.stringify({
    keys: [{ kty: 'OKP', crv: 'Ed25519', kid, use: 'sig', alg: 'EdDSA', x: jwk.x }],
  });
  return { privateKey, kid, jwks };
}

/// A signed access token for `user` of ORG, as ZITADEL issues them (JWT profile).
function token(key, user, claims = {}) {
  const now = Math.floor(Date.now() / 1000);
  const header = base64url(JSON.stringify({ alg: 'EdDSA', typ: 'JWT', kid: key.kid }));
  const payload = base64url(
    JSON.stringify({
      iss: ISSUER,
      sub: user,
      iat: now,
      exp: now + 3600,
      'urn:zitadel:iam:user:resourceowner:id': ORG,
      ...claims,
    }),
  );
  const signature = crypto.sign(null, Buffer.from(`${header}.${payload}`), key.privateKey);
  return `${header}.${payload}.${base64url(signature)}`;
}

/// The component's settings for tests: trusts `key`, abuse guards off.
function componentEnv(key) {
  return {
    AUTH_ISSUER: ISSUER,
    AUTH_JWKS: key.jwks,
    PHONE_CODE_SECRET: CODE_SECRET,
    PHONE_RESEND_COOLDOWN: '0',
    PHONE_CODES_PER_HOUR: '0',
    PHONE_CODES_PER_NUMBER_PER_HOUR: '0',
    PHONE_CODES_PER_NUMBER_PER_DAY: '0',
    PHONE_CODES_PER_RANGE_PER_HOUR: '0',
    PHONE_PUMPING_MIN_VERIFIED: '0',
  };
}

/// The environment of this process without settings meant for a component.
function cleanEnv() {
  const env = { ...process.env };
  for (const name of Object.keys(env)) {
    if (/^(AUTH_|PHONE_|SMS_|TWILIO_|CORS_)/.test(name) || name === 'KV_STORE') delete env[name];
  }
  return env;
}

/// A server child process. `ready` is a regexp over its stderr whose first group is the base URL,
/// or a function returning the URL (for servers that print nothing useful).
class Server {
  constructor(name, command, args, env) {
    this.name = name;
    this.log = '';
    this.exited = null;
    this.child = spawn(command, args, {
      env: { ...cleanEnv(), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: false,
    });
    this.child.stdout.setEncoding('utf8');
    this.child.stderr.setEncoding('utf8');
    this.child.stdout.on('data', (text) => {
      this.log += text;
    });
    this.child.stderr.on('data', (text) => {
      this.log += text;
    });
    this.child.on('exit', (code, signal) => {
      this.exited = { code, signal };
    });
    this.child.on('error', (error) => {
      this.exited = { error };
    });
    // Never leave a server behind, even when the test process dies of an error.
    this.killOnExit = () => this.child.kill('SIGKILL');
    process.on('exit', this.killOnExit);
  }

  /// Waits (bounded) until `pattern` matches the output; returns the match.
  async waitFor(pattern, limitMs = START_LIMIT_MS) {
    const deadline = Date.now() + limitMs;
    for (;;) {
      const match = this.log.match(pattern);
      if (match) return match;
      if (this.exited) {
        throw new Error(`${this.name} exited (${JSON.stringify(this.exited)}):\n${this.log}`);
      }
      if (Date.now() > deadline) {
        throw new Error(`${this.name}: no ${pattern} within ${limitMs} ms:\n${this.log}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /// The code of the last SMS the host printed to `phone` (E.164), waiting (bounded) for one
  /// after the `after`-th SMS line.
  async code(phone, after) {
    const deadline = Date.now() + CALL_LIMIT_MS;
    for (;;) {
      const lines = this.smsLines();
      const line = lines.slice(after).reverse().find((l) => l.includes(`to ${phone} `));
      if (line) return line.match(/: code (\S+):/)[1];
      if (Date.now() > deadline) throw new Error(`no SMS to ${phone}:\n${this.log}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  smsLines() {
    return this.log.split('\n').filter((l) => /^sms #\d+ to /.test(l));
  }

  /// Stops the server (SIGTERM, then SIGKILL after a bounded wait).
  async stop() {
    process.off('exit', this.killOnExit);
    if (this.exited) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

/// The reference host binary serving the core component on a free loopback port (h2c + HTTP/1.1).
/// `extraArgs` go to `serve` (e.g. `--dev`).
async function startHost(env, extraArgs = []) {
  const bin =
    process.env.SET_MY_PHONE_HOST || path.join(ROOT, 'target', 'debug', 'set-my-phone-host');
  const wasm =
    process.env.SET_MY_PHONE_WASM ||
    path.join(ROOT, 'target', 'wasm32-wasip2', 'release', 'set_my_phone.wasm');
  const server = new Server(
    'set-my-phone-host',
    bin,
    ['serve', '--wasm', wasm, '--listen', '127.0.0.1:0', '--store', 'memory:', '--print-sms', ...extraArgs],
    env,
  );
  try {
    // The host's JSON log line {…,"msg":"serving","url":"http://127.0.0.1:PORT",…}.
    const [, url] = await server.waitFor(/"msg":"serving","url":"(http:\/\/127\.0\.0\.1:\d+)"/);
    server.url = url;
    return server;
  } catch (error) {
    await server.stop();
    throw error;
  }
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
      const deadline = Date.now() + CALL_LIMIT_MS;
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

/// The real `wasmtime serve` running the artifact built for it (core + SMS provider + file-backed
/// key-value over a scratch directory), its SMS going to a webhook receiver: `env` plus that.
async function startWasmtimeServe(env) {
  const webhook = await webhookReceiver();
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'set-my-phone-interop-'));
  const artifact =
    process.env.SET_MY_PHONE_SERVE_WASM ||
    path.join(ROOT, 'target', 'artifacts', 'set-my-phone-wasmtime-serve.wasm');
  const settings = {
    ...env,
    SMS_PROVIDER: 'webhook',
    SMS_WEBHOOK_URL: `${webhook.url}/sms`,
    SMS_WEBHOOK_SIGNING_KEY: 'interop-signing-key',
  };
  const port = await freePort();
  const args = ['serve', '--addr', `127.0.0.1:${port}`, '-Scli', '--dir', `${data}::/data`];
  for (const [name, value] of Object.entries(settings)) args.push('--env', `${name}=${value}`);
  args.push(artifact);
  const server = new Server('wasmtime serve', wasmtimeBinary(), args, {});
  const stop = async () => {
    await server.stop();
    await webhook.close();
    fs.rmSync(data, { recursive: true, force: true });
  };
  try {
    await waitForPort(server, port);
  } catch (error) {
    await stop();
    throw error;
  }
  return { url: `http://127.0.0.1:${port}`, server, webhook, stop };
}

/// The service's proto (proto/phone.proto) as @grpc/proto-loader loads it for every client here:
/// imports (zitadel/change/v1/change.proto, ...) resolve against proto/, as protox does.
function loadPhoneProto() {
  return require('@grpc/proto-loader').loadSync('phone.proto', {
    includeDirs: [path.join(ROOT, 'proto')],
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
}

// --- protobuf, just what google.rpc.Status and ErrorDetail need -------------------------------

/// The fields of one protobuf message: number → list of values (varints as BigInt, length-
/// delimited fields as Buffers). Throws on malformed input.
function protoFields(bytes) {
  const fields = new Map();
  let at = 0;
  const varint = () => {
    let value = 0n;
    for (let shift = 0n; ; shift += 7n) {
      if (at >= bytes.length || shift > 63n) throw new Error('malformed varint');
      const byte = bytes[at++];
      value |= BigInt(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return value;
    }
  };
  while (at < bytes.length) {
    const key = varint();
    const number = Number(key >> 3n);
    let value;
    switch (Number(key & 7n)) {
      case 0:
        value = varint();
        break;
      case 2: {
        const length = Number(varint());
        if (at + length > bytes.length) throw new Error('truncated field');
        value = bytes.subarray(at, at + length);
        at += length;
        break;
      }
      case 1:
        value = bytes.subarray(at, at + 8);
        at += 8;
        break;
      case 5:
        value = bytes.subarray(at, at + 4);
        at += 4;
        break;
      default:
        throw new Error(`unsupported wire type in key ${key}`);
    }
    if (!fields.has(number)) fields.set(number, []);
    fields.get(number).push(value);
  }
  return fields;
}

/// google.rpc.Status{code=1, message=2, details=3 (Any{type_url=1, value=2})} with each
/// zitadel.v1.ErrorDetail{id=1, message=2} decoded.
function decodeStatus(bytes) {
  const fields = protoFields(bytes);
  const text = (buffer) => (buffer ? Buffer.from(buffer).toString('utf8') : '');
  const details = (fields.get(3) || []).map((any) => {
    const anyFields = protoFields(any);
    const typeUrl = text(anyFields.get(1)?.[0]);
    const value = anyFields.get(2)?.[0] || Buffer.alloc(0);
    if (typeUrl !== DETAIL_TYPE) return { typeUrl };
    const detail = protoFields(value);
    return { typeUrl, id: text(detail.get(1)?.[0]), message: text(detail.get(2)?.[0]) };
  });
  return {
    code: Number(fields.get(1)?.[0] ?? 0n),
    message: text(fields.get(2)?.[0]),
    details,
  };
}

module.exports = {
  ROOT,
  ORG,
  CALL_LIMIT_MS,
  Server,
  signingKey,
  token,
  componentEnv,
  startHost,
  startWasmtimeServe,
  loadPhoneProto,
  webhookReceiver,
  freePort,
  decodeStatus,
};
