// Self-test of provider.mjs (run by ./test): starts it as a child process the way the Rust
// integration tests do and checks every part of its interface.
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const ORG_CLAIM = 'urn:zitadel:iam:user:resourceowner:id';

function startProvider({ port = 0, stateDir, env = {} }) {
  const child = spawn(process.execPath, [path.join(here, 'provider.mjs')], {
    env: { ...process.env, OIDC_PORT: String(port), OIDC_STATE_DIR: stateDir, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`provider did not start:\n${stderr}`)), 20_000);
    child.stdout.on('data', (d) => {
      stdout += d;
      const nl = stdout.indexOf('\n');
      if (nl !== -1) {
        clearTimeout(timer);
        resolve(JSON.parse(stdout.slice(0, nl)));
      }
    });
    exited.then(({ code }) => reject(new Error(`provider exited with ${code}:\n${stderr}`)));
  });
  return {
    child,
    ready,
    stdout: () => stdout,
    stderr: () => stderr,
    async stop() {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

function clientAssertion(keyJson, issuer, overrides = {}) {
  const key = JSON.parse(keyJson);
  const now = Math.floor(Date.now() / 1000);
  const header = { alg: 'RS256', typ: 'JWT', kid: key.keyId };
  const payload = {
    iss: key.clientId, sub: key.clientId, aud: issuer, jti: crypto.randomUUID(), iat: now, exp: now + 60, ...overrides,
  };
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${b64(header)}.${b64(payload)}`;
  const signature = crypto.sign('sha256', Buffer.from(input), crypto.createPrivateKey(key.key));
  return `${input}.${signature.toString('base64url')}`;
}

function decodeJwt(token) {
  const [h, p] = token.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url')),
    payload: JSON.parse(Buffer.from(p, 'base64url')),
  };
}

function verifyJwt(token, jwks) {
  const [h, p, s] = token.split('.');
  const { kid } = JSON.parse(Buffer.from(h, 'base64url'));
  const jwk = jwks.keys.find((k) => k.kid === kid);
  if (!jwk) return false;
  return crypto.verify('sha256', Buffer.from(`${h}.${p}`), crypto.createPublicKey({ key: jwk, format: 'jwk' }), Buffer.from(s, 'base64url'));
}

describe('test OpenID provider', () => {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'oidc-selftest-'));
  let running;
  let info;
  let discovery;

  // Client authentication as a form body / headers, per method.
  function auth(method, extra = {}) {
    if (method === 'basic') {
      const { clientId, clientSecret } = info.basic;
      const enc = (s) => encodeURIComponent(s);
      return {
        headers: { authorization: `Basic ${Buffer.from(`${enc(clientId)}:${enc(clientSecret)}`).toString('base64')}` },
        form: {},
      };
    }
    return {
      headers: {},
      form: {
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: clientAssertion(info.jwtClient.keyJson, info.issuer, extra),
      },
    };
  }

  async function post(url, method, form, extra) {
    const a = auth(method, extra);
    return fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...a.headers },
      body: new URLSearchParams({ ...form, ...a.form }),
    });
  }

  async function introspect(token, method) {
    const res = await post(discovery.introspection_endpoint, method, { token });
    assert.equal(res.status, 200, await res.clone().text());
    return res.json();
  }

  async function revoke(token, method) {
    const res = await post(discovery.revocation_endpoint, method, { token });
    assert.equal(res.status, 200, await res.text());
  }

  async function mint(body) {
    const res = await fetch(`${info.issuer}/test/token`, { method: 'POST', body: JSON.stringify(body) });
    assert.equal(res.status, 200, await res.clone().text());
    return res.json();
  }

  async function jwks() {
    const res = await fetch(discovery.jwks_uri);
    assert.equal(res.status, 200);
    return { body: await res.json(), cacheControl: res.headers.get('cache-control') };
  }

  async function stats() {
    return (await fetch(`${info.issuer}/test/stats`)).json();
  }

  before(async () => {
    running = startProvider({ stateDir });
    info = await running.ready;
    discovery = await (await fetch(`${info.issuer}/.well-known/openid-configuration`)).json();
  });

  after(async () => {
    if (running) await running.stop();
    fs.rmSync(stateDir, { recursive: true, force: true });
  });

  test('prints one JSON line with issuer and both clients', () => {
    assert.match(info.issuer, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.ok(info.basic.clientId && info.basic.clientSecret);
    const key = JSON.parse(info.jwtClient.keyJson);
    assert.equal(key.type, 'application');
    assert.equal(key.clientId, info.jwtClient.clientId);
    assert.ok(key.keyId && key.appId);
    assert.match(key.key, /^-----BEGIN RSA PRIVATE KEY-----\n/);
    assert.equal(running.stdout().split('\n').filter(Boolean).length, 1);
  });

  test('discovery advertises jwks, introspection and revocation', () => {
    assert.equal(discovery.issuer, info.issuer);
    assert.equal(discovery.jwks_uri, `${info.issuer}/oauth/v2/keys`);
    assert.equal(discovery.introspection_endpoint, `${info.issuer}/oauth/v2/introspect`);
    assert.equal(discovery.revocation_endpoint, `${info.issuer}/oauth/v2/revoke`);
    assert.ok(discovery.token_endpoint_auth_methods_supported.includes('private_key_jwt'));
    assert.ok(discovery.token_endpoint_auth_methods_supported.includes('client_secret_basic'));
  });

  test('JWKS holds two RS256 signing keys, no Cache-Control', async () => {
    const { body, cacheControl } = await jwks();
    assert.equal(body.keys.length, 2);
    for (const k of body.keys) {
      assert.equal(k.kty, 'RSA');
      assert.equal(k.alg, 'RS256');
      assert.equal(k.use, 'sig');
      assert.ok(k.kid);
      assert.equal(k.d, undefined, 'private part must not be served');
    }
    assert.notEqual(body.keys[0].kid, body.keys[1].kid);
    assert.equal(cacheControl, null);
  });

  test('opaque token: introspection with both methods, then revocation', async () => {
    const { access_token: token, expires_in: expiresIn } = await mint({ sub: 'user-1', org: 'org-1', format: 'opaque', expiresIn: 600 });
    assert.equal(expiresIn, 600);
    assert.equal(token.split('.').length, 1);
    for (const method of ['basic', 'jwt']) {
      const body = await introspect(token, method);
      assert.equal(body.active, true);
      assert.equal(body.sub, 'user-1');
      assert.equal(body[ORG_CLAIM], 'org-1');
      assert.equal(body.client_id, info.basic.clientId);
      assert.equal(body.iss, info.issuer);
      assert.equal(body.token_type, 'Bearer');
      assert.ok(body.aud.includes(info.basic.clientId));
      const now = Math.floor(Date.now() / 1000);
      assert.ok(Math.abs(body.iat - now) < 30);
      assert.equal(body.exp - body.iat, 600);
    }
    await revoke(token, 'jwt');
    assert.deepEqual(await introspect(token, 'basic'), { active: false });
    assert.deepEqual(await introspect(token, 'jwt'), { active: false });
  });

  test('token for the jwt client, without org', async () => {
    const { access_token: token } = await mint({ sub: 'user-2', clientId: info.jwtClient.clientId });
    const body = await introspect(token, 'basic');
    assert.equal(body.active, true);
    assert.equal(body.client_id, info.jwtClient.clientId);
    assert.equal(body[ORG_CLAIM], undefined);
  });

  test('unknown token is inactive', async () => {
    assert.deepEqual(await introspect('no-such-token', 'basic'), { active: false });
  });

  test('JWT token: verifies against the JWKS, introspection and revocation', async () => {
    const { access_token: token } = await mint({ sub: 'user-3', org: 'org-3', format: 'jwt', audience: ['project-x'] });
    const { header, payload } = decodeJwt(token);
    const { body: keys } = await jwks();
    assert.equal(header.alg, 'RS256');
    assert.equal(header.kid, keys.keys[0].kid, 'signed with the current (first) key');
    assert.ok(verifyJwt(token, keys));
    assert.equal(payload.sub, 'user-3');
    assert.equal(payload[ORG_CLAIM], 'org-3');
    assert.equal(payload.iss, info.issuer);
    assert.equal(payload.client_id, info.basic.clientId);
    assert.deepEqual(payload.aud, ['project-x', info.basic.clientId]);
    assert.ok(payload.exp > payload.iat);
    for (const method of ['basic', 'jwt']) {
      const body = await introspect(token, method);
      assert.equal(body.active, true);
      assert.equal(body.sub, 'user-3');
      assert.equal(body[ORG_CLAIM], 'org-3');
      assert.equal(body.exp, payload.exp);
      assert.equal(body.iat, payload.iat);
      assert.equal(body.client_id, info.basic.clientId);
    }
    await revoke(token, 'basic');
    assert.deepEqual(await introspect(token, 'jwt'), { active: false });
    // A JWT with a forged signature is not ours: inactive.
    const [h, p] = token.split('.');
    const forged = `${h}.${p}.${Buffer.from('x'.repeat(256)).toString('base64url')}`;
    assert.deepEqual(await introspect(forged, 'basic'), { active: false });
  });

  test('client authentication failures answer 401 invalid_client', async () => {
    const { access_token: token } = await mint({ sub: 'user-4', org: 'org-4' });
    const wrongSecret = await fetch(discovery.introspection_endpoint, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${encodeURIComponent(info.basic.clientId)}:nope`).toString('base64')}`,
      },
      body: new URLSearchParams({ token }),
    });
    assert.equal(wrongSecret.status, 401);
    assert.equal((await wrongSecret.json()).error, 'invalid_client');
    // Wrong audience, expired assertion.
    for (const extra of [{ aud: 'https://elsewhere' }, { exp: Math.floor(Date.now() / 1000) - 120 }]) {
      const res = await post(discovery.introspection_endpoint, 'jwt', { token }, extra);
      assert.equal(res.status, 401);
      assert.equal((await res.json()).error, 'invalid_client');
    }
    // A replayed assertion (same jti).
    const a = auth('jwt');
    const send = () => fetch(discovery.introspection_endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token, ...a.form }),
    });
    assert.equal((await send()).status, 200);
    assert.equal((await send()).status, 401);
  });

  test('control endpoint rejects bad input', async () => {
    for (const body of ['{', '[]', JSON.stringify({ org: 'o' }), JSON.stringify({ sub: 'u', format: 'paseto' }),
      JSON.stringify({ sub: 'u', expiresIn: 0 }), JSON.stringify({ sub: 'u', clientId: 'nobody' })]) {
      const res = await fetch(`${info.issuer}/test/token`, { method: 'POST', body });
      assert.equal(res.status, 400, body);
    }
  });

  test('client_credentials at the token endpoint: opaque, and JWT with a resource', async () => {
    const res = await post(discovery.token_endpoint, 'basic', { grant_type: 'client_credentials' });
    assert.equal(res.status, 200);
    const opaque = await res.json();
    assert.equal((await introspect(opaque.access_token, 'jwt')).client_id, info.basic.clientId);
    const res2 = await post(discovery.token_endpoint, 'jwt', { grant_type: 'client_credentials', resource: 'urn:set-my-phone' });
    assert.equal(res2.status, 200);
    const { payload } = decodeJwt((await res2.json()).access_token);
    assert.equal(payload.aud, 'urn:set-my-phone');
    assert.equal(payload.client_id, info.jwtClient.clientId);
  });

  let opaqueBeforeRotation;
  let jwtBeforeRotation;
  let keysAfterRotation;

  test('key rotation: new current key, previous kept, oldest dropped', async () => {
    opaqueBeforeRotation = (await mint({ sub: 'user-5', org: 'org-5' })).access_token;
    jwtBeforeRotation = (await mint({ sub: 'user-5', org: 'org-5', format: 'jwt' })).access_token;
    const { body: before } = await jwks();
    const res = await fetch(`${info.issuer}/test/rotate-keys`, { method: 'POST' });
    assert.equal(res.status, 200);
    const { kids } = await res.json();
    const { body: afterKeys } = await jwks();
    keysAfterRotation = afterKeys;
    assert.deepEqual(afterKeys.keys.map((k) => k.kid), kids);
    assert.equal(kids.length, 2);
    assert.ok(!before.keys.some((k) => k.kid === kids[0]), 'a new kid');
    assert.equal(kids[1], before.keys[0].kid, 'the previous current key stays');
    const fresh = (await mint({ sub: 'user-6', org: 'org-6', format: 'jwt' })).access_token;
    assert.equal(decodeJwt(fresh).header.kid, kids[0]);
    assert.ok(verifyJwt(fresh, afterKeys));
    assert.ok(verifyJwt(jwtBeforeRotation, afterKeys), 'a token signed before rotation still verifies');
    assert.equal((await introspect(opaqueBeforeRotation, 'basic')).active, true);
    assert.equal((await introspect(jwtBeforeRotation, 'jwt')).active, true);
    assert.equal((await introspect(fresh, 'basic')).active, true);
  });

  test('stats count requests served', async () => {
    const s0 = await stats();
    await fetch(`${info.issuer}/.well-known/openid-configuration`);
    await jwks();
    await jwks();
    await introspect('x', 'basic');
    await revoke('x', 'basic');
    const s1 = await stats();
    assert.deepEqual(Object.keys(s1).sort(), ['discovery', 'introspection', 'jwks', 'revocation']);
    assert.deepEqual(s1, {
      discovery: s0.discovery + 1, jwks: s0.jwks + 2, introspection: s0.introspection + 1, revocation: s0.revocation + 1,
    });
  });

  test('restart on the same port keeps keys, clients and tokens; SIGTERM exits 0', async () => {
    const { port } = new URL(info.issuer);
    const { code } = await running.stop();
    assert.equal(code, 0);
    running = startProvider({ port, stateDir });
    const again = await running.ready;
    assert.deepEqual(again, info);
    const { body } = await jwks();
    assert.deepEqual(body, keysAfterRotation);
    assert.equal((await introspect(opaqueBeforeRotation, 'jwt')).active, true);
    assert.equal((await introspect(jwtBeforeRotation, 'basic')).active, true);
    assert.deepEqual(await stats(), { discovery: 0, jwks: 1, introspection: 2, revocation: 0 });
  });

  test('JWKS Cache-Control can be set', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oidc-selftest-'));
    const other = startProvider({ stateDir: dir, env: { OIDC_JWKS_CACHE_CONTROL: 'max-age=300, must-revalidate' } });
    try {
      const o = await other.ready;
      const res = await fetch(`${o.issuer}/oauth/v2/keys`);
      assert.equal(res.headers.get('cache-control'), 'max-age=300, must-revalidate');
      assert.notEqual(o.basic.clientId, info.basic.clientId, 'a fresh state dir has fresh clients');
    } finally {
      await other.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
