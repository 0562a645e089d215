// Test-only OpenID provider for the auth integration tests (README.md here).
//
// A real `oidc-provider` on 127.0.0.1 with discovery, a JWKS of two RSA keys, introspection and
// revocation for two clients (client_secret_basic and private_key_jwt), plus test-only control
// endpoints under /test/ that mint user access tokens through the provider's own token models,
// rotate the signing keys and report request counters.
//
// stdout carries exactly one JSON line once listening; everything else goes to stderr.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';

// oidc-provider prints notices with console.info (stdout); keep stdout for the one JSON line.
console.log = console.info = console.debug = (...args) => console.error(...args);

const { default: Provider } = await import('oidc-provider');

const ORG_CLAIM = 'urn:zitadel:iam:user:resourceowner:id';
const PROJECT = 'set-my-phone';
// ZITADEL's endpoint paths, so the discovery document looks like ZITADEL's.
const ROUTES = {
  authorization: '/oauth/v2/authorize',
  token: '/oauth/v2/token',
  introspection: '/oauth/v2/introspect',
  revocation: '/oauth/v2/revoke',
  jwks: '/oauth/v2/keys',
  userinfo: '/oidc/v1/userinfo',
  end_session: '/oidc/v1/end_session',
};
const DISCOVERY_PATHS = new Set([
  '/.well-known/openid-configuration',
  '/.well-known/oauth-authorization-server',
]);
const JWT_SHADOW_PREFIX = 'jwt-at.';
const MAX_STORE_ENTRIES = 5000;
const MAX_CONTROL_BODY = 16 * 1024;
const MAX_FORM_BODY = 56 * 1024;
const MAX_TOKEN_TTL = 24 * 60 * 60;

const log = (...args) => console.error('oidc-test-provider:', ...args);

function fail(message) {
  log(message);
  process.exit(2);
}

// ---------------------------------------------------------------- environment

const portText = process.env.OIDC_PORT ?? '0';
if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) fail(`OIDC_PORT must be 0..65535, got ${portText}`);
const requestedPort = Number(portText);
const stateDir = process.env.OIDC_STATE_DIR;
if (!stateDir) fail('OIDC_STATE_DIR must be set (a directory for keys, clients and tokens)');
fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
// `native` leaves JWT access tokens to oidc-provider alone (it answers 400 unsupported_token_type).
const jwtIntrospection = (process.env.OIDC_JWT_INTROSPECTION ?? 'shim') !== 'native';
// oidc-provider sends no Cache-Control on its JWKS; a test may ask for ZITADEL's
// (`max-age=300, must-revalidate`) or any other value.
const jwksCacheControl = process.env.OIDC_JWKS_CACHE_CONTROL || undefined;

// ---------------------------------------------------------------- state files

function statePath(name) {
  return path.join(stateDir, name);
}

function readJson(name) {
  try {
    return JSON.parse(fs.readFileSync(statePath(name), 'utf8'));
  } catch (err) {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  }
}

function writeJson(name, value) {
  const file = statePath(name);
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(value), { mode: 0o600 });
  fs.renameSync(tmp, file);
}

function newSigningKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    ...privateKey.export({ format: 'jwk' }),
    kid: crypto.randomBytes(12).toString('base64url'),
    alg: 'RS256',
    use: 'sig',
  };
}

// Signing keys, current first. The provider signs with the first RS256 key.
let signingKeys = readJson('keys.json')?.keys;
if (!Array.isArray(signingKeys) || signingKeys.length === 0) {
  signingKeys = [newSigningKey(), newSigningKey()];
  writeJson('keys.json', { keys: signingKeys });
}

function randomDigits(n) {
  let out = String(1 + crypto.randomInt(9));
  while (out.length < n) out += String(crypto.randomInt(10));
  return out;
}

let clients = readJson('clients.json');
if (!clients) {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyId = randomDigits(18);
  clients = {
    // ZITADEL's client ids look like `<id>@<project>`; the `@` keeps Basic encoding honest.
    basic: {
      clientId: `${randomDigits(18)}@${PROJECT}`,
      clientSecret: crypto.randomBytes(32).toString('base64url'),
    },
    jwtClient: {
      clientId: `${randomDigits(18)}@${PROJECT}`,
      appId: randomDigits(18),
      keyId,
      privateKeyPem: privateKey.export({ type: 'pkcs1', format: 'pem' }),
      publicJwk: { ...publicKey.export({ format: 'jwk' }), kid: keyId, alg: 'RS256', use: 'sig' },
    },
  };
  writeJson('clients.json', clients);
}

// ---------------------------------------------------------------- adapter (persisted)

const epoch = () => Math.floor(Date.now() / 1000);

// One store for every model, saved to tokens.json on each change, so opaque tokens, grants and
// replay-detection entries survive a restart and a rebuild of the Provider.
const store = new Map();
{
  const saved = readJson('tokens.json');
  const now = epoch();
  for (const [key, entry] of Object.entries(saved?.entries ?? {})) {
    if (!entry.expiresAt || entry.expiresAt > now) store.set(key, entry);
  }
}

function persistStore() {
  const now = epoch();
  for (const [key, entry] of store) {
    if (entry.expiresAt && entry.expiresAt <= now) store.delete(key);
  }
  while (store.size > MAX_STORE_ENTRIES) store.delete(store.keys().next().value);
  writeJson('tokens.json', { entries: Object.fromEntries(store) });
}

class FileAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  live(entry) {
    if (!entry) return undefined;
    if (entry.expiresAt && entry.expiresAt <= epoch()) return undefined;
    return entry;
  }

  async upsert(id, payload, expiresIn) {
    const entry = { payload, expiresAt: expiresIn ? epoch() + expiresIn : undefined };
    store.delete(this.key(id));
    store.set(this.key(id), entry);
    persistStore();
  }

  async find(id) {
    return this.live(store.get(this.key(id)))?.payload;
  }

  async findByUserCode(userCode) {
    return this.findBy((p) => p.userCode === userCode);
  }

  async findByUid(uid) {
    return this.findBy((p) => p.uid === uid);
  }

  findBy(predicate) {
    const prefix = `${this.model}:`;
    for (const [key, entry] of store) {
      if (key.startsWith(prefix) && this.live(entry) && predicate(entry.payload)) return entry.payload;
    }
    return undefined;
  }

  async consume(id) {
    const entry = store.get(this.key(id));
    if (entry) {
      entry.payload.consumed = epoch();
      persistStore();
    }
  }

  async destroy(id) {
    if (store.delete(this.key(id))) persistStore();
  }

  async revokeByGrantId(grantId) {
    let changed = false;
    for (const [key, entry] of store) {
      if (entry.payload?.grantId === grantId) {
        store.delete(key);
        changed = true;
      }
    }
    if (changed) persistStore();
  }
}

// ---------------------------------------------------------------- provider

const counters = { discovery: 0, jwks: 0, introspection: 0, revocation: 0 };

// Per-request error lines are capped so that a parent that pipes stderr without reading it
// cannot fill the pipe and stall the provider (writes to a pipe block in Node).
const MAX_REQUEST_ERROR_LINES = 200;
let requestErrorLines = 0;
function logRequestError(line) {
  requestErrorLines += 1;
  if (requestErrorLines < MAX_REQUEST_ERROR_LINES) log(line);
  else if (requestErrorLines === MAX_REQUEST_ERROR_LINES) log('further request errors are not logged');
}
const cookieKeys = [crypto.randomBytes(32).toString('base64url')];

function buildProvider(issuer) {
  const provider = new Provider(issuer, {
    adapter: FileAdapter,
    clients: [
      {
        client_id: clients.basic.clientId,
        client_secret: clients.basic.clientSecret,
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
      },
      {
        client_id: clients.jwtClient.clientId,
        token_endpoint_auth_method: 'private_key_jwt',
        jwks: { keys: [clients.jwtClient.publicJwk] },
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
      },
    ],
    jwks: { keys: signingKeys },
    cookies: { keys: cookieKeys },
    routes: ROUTES,
    scopes: ['openid', 'profile', 'email', 'urn:zitadel:iam:user:resourceowner'],
    // ZITADEL accepts the issuer as the client assertion's audience; so does oidc-provider by
    // default (issuer, token endpoint or the endpoint's own URL).
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'private_key_jwt'],
    findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
    // Minted tokens carry their claims in `extra` (set by /test/token) and keep them.
    extraTokenClaims: async (_ctx, token) => token.extra,
    ttl: {
      AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL || 3600,
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL || 3600,
      Grant: 3600,
      Interaction: 600,
      Session: 3600,
      IdToken: 3600,
      AuthorizationCode: 60,
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      // Any authenticated client of this test provider may introspect or revoke any token
      // (ZITADEL restricts both to the token's project).
      introspection: { enabled: true, allowedPolicy: async () => true },
      revocation: { enabled: true, allowedPolicy: async () => true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => undefined,
        useGrantedResource: async () => false,
        // client_credentials with `resource=<anything>` gives a JWT for that audience.
        getResourceServerInfo: async (_ctx, resource) => ({
          audience: resource,
          scope: 'openid',
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
  });
  for (const event of ['server_error', 'introspection.error', 'revocation.error', 'grant.error', 'jwks.error', 'discovery.error']) {
    provider.on(event, (...args) => {
      const err = args.find((a) => a instanceof Error);
      const detail = err?.error_detail ?? err?.error_description;
      logRequestError(`${event}: ${err?.message ?? ''}${detail ? ` (${detail})` : ''}`);
    });
  }
  return { provider, handler: provider.callback() };
}

// ---------------------------------------------------------------- helpers

async function readBody(req, limit) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > limit) throw Object.assign(new Error('request body too large'), { status: 413 });
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

function boundedString(value, name, { optional = false } = {}) {
  if (value === undefined || value === null) {
    if (optional) return undefined;
    throw Object.assign(new Error(`${name} is required`), { status: 400 });
  }
  if (typeof value !== 'string' || value.length === 0 || value.length > 256) {
    throw Object.assign(new Error(`${name} must be a non-empty string of at most 256 characters`), { status: 400 });
  }
  return value;
}

// Verifies a JWT signed by one of this provider's keys; returns its payload or undefined.
function verifyOwnJwt(token, issuer) {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
    const payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    if (header.alg !== 'RS256') return undefined;
    const jwk = signingKeys.find((k) => k.kid === header.kid);
    if (!jwk) return undefined;
    const { d, p, q, dp, dq, qi, ...pub } = jwk;
    const ok = crypto.verify(
      'sha256',
      Buffer.from(`${parts[0]}.${parts[1]}`),
      crypto.createPublicKey({ key: pub, format: 'jwk' }),
      Buffer.from(parts[2], 'base64url'),
    );
    if (!ok || payload.iss !== issuer || typeof payload.jti !== 'string') return undefined;
    return payload;
  } catch {
    return undefined;
  }
}

function looksLikeJwt(token) {
  return typeof token === 'string' && /^[\w-]+\.[\w-]+\.[\w-]*$/.test(token);
}

// ---------------------------------------------------------------- control endpoints

async function mintToken(current, body) {
  const { provider } = current;
  const sub = boundedString(body.sub, 'sub');
  const org = boundedString(body.org, 'org', { optional: true });
  const format = body.format ?? 'opaque';
  if (format !== 'opaque' && format !== 'jwt') {
    throw Object.assign(new Error('format must be "opaque" or "jwt"'), { status: 400 });
  }
  const clientId = boundedString(body.clientId, 'clientId', { optional: true }) ?? clients.basic.clientId;
  const expiresIn = body.expiresIn ?? 3600;
  if (!Number.isInteger(expiresIn) || expiresIn < 1 || expiresIn > MAX_TOKEN_TTL) {
    throw Object.assign(new Error(`expiresIn must be an integer 1..${MAX_TOKEN_TTL}`), { status: 400 });
  }
  const scope = boundedString(body.scope, 'scope', { optional: true })
    ?? 'openid profile urn:zitadel:iam:user:resourceowner';
  let audience = body.audience ?? [PROJECT];
  if (typeof audience === 'string') audience = [audience];
  if (!Array.isArray(audience) || audience.length > 8) {
    throw Object.assign(new Error('audience must be a string or an array of at most 8 strings'), { status: 400 });
  }
  audience = audience.map((a) => boundedString(a, 'audience'));
  const aud = [...new Set([...audience, clientId])];

  const client = await provider.Client.find(clientId);
  if (!client) throw Object.assign(new Error('unknown clientId'), { status: 400 });
  const extra = org === undefined ? {} : { [ORG_CLAIM]: org };

  if (format === 'opaque') {
    const token = new provider.AccessToken({ accountId: sub, client, expiresIn, scope });
    token.aud = aud;
    token.extra = extra;
    const value = await token.save();
    return { access_token: value, expires_in: expiresIn };
  }

  const resourceServer = {
    audience: PROJECT,
    scope,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'RS256' } },
    identifier: () => PROJECT,
  };
  const token = new provider.AccessToken({
    accountId: sub, client, expiresIn, scope, resourceServer,
  });
  token.aud = aud;
  token.extra = extra;
  const value = await token.save();
  if (jwtIntrospection) {
    // oidc-provider keeps no server-side record of JWT access tokens; keep an opaque twin under
    // `jwt-at.<jti>` so introspection and revocation of the JWT (rewritten to the twin) run the
    // provider's own code.
    const claims = JSON.parse(Buffer.from(value.split('.')[1], 'base64url').toString('utf8'));
    const twin = new provider.AccessToken({
      accountId: sub, client, scope, jti: `${JWT_SHADOW_PREFIX}${claims.jti}`, iat: claims.iat, exp: claims.exp,
    });
    twin.aud = aud;
    twin.extra = extra;
    twin.format = 'opaque';
    await twin.save();
  }
  return { access_token: value, expires_in: expiresIn };
}

// ---------------------------------------------------------------- server

let current; // { provider, handler }
let issuer;

function rotateKeys() {
  signingKeys = [newSigningKey(), signingKeys[0]];
  writeJson('keys.json', { keys: signingKeys });
  current = buildProvider(issuer);
  return { kids: signingKeys.map((k) => k.kid) };
}

async function control(req, res, pathname) {
  try {
    if (req.method === 'POST' && pathname === '/test/token') {
      const text = await readBody(req, MAX_CONTROL_BODY);
      let body;
      try {
        body = JSON.parse(text || '{}');
      } catch {
        throw Object.assign(new Error('body must be JSON'), { status: 400 });
      }
      if (typeof body !== 'object' || body === null || Array.isArray(body)) {
        throw Object.assign(new Error('body must be a JSON object'), { status: 400 });
      }
      sendJson(res, 200, await mintToken(current, body));
    } else if (req.method === 'POST' && pathname === '/test/rotate-keys') {
      await readBody(req, MAX_CONTROL_BODY);
      sendJson(res, 200, rotateKeys());
    } else if (req.method === 'GET' && pathname === '/test/stats') {
      sendJson(res, 200, counters);
    } else {
      sendJson(res, 404, { error: 'not_found' });
    }
  } catch (err) {
    if (!err.status) logRequestError(`control endpoint failed: ${err.stack}`);
    sendJson(res, err.status ?? 500, { error: err.status ? 'invalid_request' : 'server_error', error_description: err.message });
  }
}

async function handle(req, res) {
  let pathname;
  try {
    pathname = new URL(req.url, 'http://127.0.0.1').pathname;
  } catch {
    res.writeHead(400).end();
    return;
  }
  if (pathname.startsWith('/test/')) {
    await control(req, res, pathname);
    return;
  }
  if (!current) {
    res.writeHead(503).end();
    return;
  }
  if (req.method === 'GET' && DISCOVERY_PATHS.has(pathname)) counters.discovery += 1;
  if (req.method === 'GET' && pathname === ROUTES.jwks) {
    counters.jwks += 1;
    if (jwksCacheControl) res.setHeader('cache-control', jwksCacheControl);
  }
  const tokenEndpoint = req.method === 'POST'
    && (pathname === ROUTES.introspection || pathname === ROUTES.revocation);
  if (tokenEndpoint) {
    counters[pathname === ROUTES.introspection ? 'introspection' : 'revocation'] += 1;
  }
  const { handler } = current;
  if (tokenEndpoint && jwtIntrospection
      && /^application\/x-www-form-urlencoded\b/i.test(req.headers['content-type'] ?? '')) {
    let text;
    try {
      text = await readBody(req, MAX_FORM_BODY);
    } catch {
      sendJson(res, 413, { error: 'invalid_request', error_description: 'request body too large' });
      return;
    }
    const form = new URLSearchParams(text);
    const tokens = form.getAll('token');
    if (tokens.length === 1 && looksLikeJwt(tokens[0])) {
      const claims = verifyOwnJwt(tokens[0], issuer);
      // A JWT that is not ours (or is forged) is an unknown token: inactive, nothing to revoke.
      form.set('token', claims ? `${JWT_SHADOW_PREFIX}${claims.jti}` : `unknown.${crypto.randomUUID()}`);
      text = form.toString();
    }
    // The stream is consumed; oidc-provider then reads the already-read body from req.body.
    req.body = text;
  }
  handler(req, res);
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    logRequestError(`request failed: ${err.stack}`);
    if (!res.headersSent) res.writeHead(500);
    res.end();
  });
});
server.headersTimeout = 10_000;
server.requestTimeout = 15_000;
server.keepAliveTimeout = 5_000;
server.maxConnections = 256;
server.maxHeadersCount = 100;

server.on('error', (err) => fail(`cannot listen on 127.0.0.1:${requestedPort}: ${err.message}`));
server.listen(requestedPort, '127.0.0.1', () => {
  const { port } = server.address();
  issuer = `http://127.0.0.1:${port}`;
  current = buildProvider(issuer);
  const line = {
    issuer,
    basic: { clientId: clients.basic.clientId, clientSecret: clients.basic.clientSecret },
    jwtClient: {
      clientId: clients.jwtClient.clientId,
      keyJson: JSON.stringify({
        type: 'application',
        keyId: clients.jwtClient.keyId,
        key: clients.jwtClient.privateKeyPem,
        appId: clients.jwtClient.appId,
        clientId: clients.jwtClient.clientId,
      }),
    },
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
  log(`listening on ${issuer}, state in ${stateDir}`);
});

let stopping = false;
function stop(signal) {
  if (stopping) return;
  stopping = true;
  log(`${signal}: stopping`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
