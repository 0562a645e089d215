// A real browser (Debian's Chromium, driven by puppeteer-core) calling the service from another
// origin, as a ZITADEL web app does: web/index.html served from one origin, the service on
// another, ZITADEL's published web client (@zitadel/client over connect-web's gRPC-Web
// transport, bundled by esbuild) and plain fetch for JSON; then the same page from an origin
// outside CORS_ALLOWED_ORIGINS, which the browser must block. On the reference host and on the
// real `wasmtime serve`. docs/api.md "Browsers and CORS".
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { test } = require('node:test');
const esbuild = require('esbuild');
const puppeteer = require('puppeteer-core');
const support = require('./support.js');

const PAGE = path.join(support.ROOT, 'web', 'index.html');
const SCREENSHOT = path.join(support.ROOT, 'target', 'browser', 'set-my-phone.png');
/// Budget for one browser step; generous because CI machines are busy.
const STEP_LIMIT_MS = 60_000;

/// Debian's chromium (scripts/test installs it), or CHROMIUM.
function chromiumBinary() {
  if (process.env.CHROMIUM) return process.env.CHROMIUM;
  for (const name of ['chromium', 'chromium-browser']) {
    const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
    if (found.status === 0 && found.stdout.trim()) return found.stdout.trim();
  }
  throw new Error('chromium is not installed: apt-get install -y chromium (scripts/test does as root)');
}

/// @zitadel/client and connect-web's gRPC-Web transport as one script for the page.
async function zitadelClientBundle() {
  const built = await esbuild.build({
    entryPoints: [path.join(__dirname, 'browser', 'zitadel-client.js')],
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: 'chrome120',
    write: false,
    logLevel: 'warning',
  });
  return built.outputFiles[0].text;
}

/// Serves web/index.html (with the client bundle loaded in its head) on a loopback port: an
/// origin of its own.
async function pageServer(bundle) {
  const html = fs
    .readFileSync(PAGE, 'utf8')
    .replace('</head>', '<script src="/zitadel-client.js"></script>\n</head>');
  const server = http.createServer((request, response) => {
    const url = new URL(request.url, 'http://page');
    if (url.pathname === '/') {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      response.end(html);
    } else if (url.pathname === '/zitadel-client.js') {
      response.writeHead(200, { 'content-type': 'text/javascript' });
      response.end(bundle);
    } else {
      response.writeHead(404);
      response.end();
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    origin: `http://127.0.0.1:${server.address().port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(resolve);
      }),
  };
}

/// Opens the page from `origin`, pointed at the service `api`, signed in with `token`.
async function open(browser, origin, api, token) {
  const page = await browser.newPage();
  page.setDefaultTimeout(STEP_LIMIT_MS);
  await page.goto(`${origin}/?api=${encodeURIComponent(api)}`, { waitUntil: 'load' });
  await page.$eval('#token', (field, value) => {
    field.value = value;
  }, token);
  return page;
}

/// One RPC from inside the page, over 'json' (fetch) or 'grpc-web' (@zitadel/client). A call the
/// browser refuses to make or read comes back as {ok: false, network: message}.
function call(page, rpc, fields, transport) {
  return page.evaluate(
    async (rpc, fields, transport) => {
      try {
        return await window.setMyPhone.call(rpc, fields, transport);
      } catch (error) {
        return { ok: false, network: String(error) };
      }
    },
    rpc,
    fields,
    transport,
  );
}

/// Sets `phone` and verifies it with the page's buttons, as a person would.
async function useScreen(page, service, phone) {
  const before = await service.smsCount();
  await page.evaluate(() => window.setMyPhone.refresh());
  await page.$eval('#phone', (field) => {
    field.value = '';
  });
  await page.type('#phone', phone);
  await page.click('#send');
  const code = await service.code(e164(phone), before);
  await page.waitForFunction(
    (expected) => document.querySelector('#state').textContent.startsWith(expected),
    {},
    e164(phone),
  );
  await page.type('#code', code);
  await page.click('#verify');
  await page.waitForSelector('#state .verified');
  assert.equal(await page.$eval('#error', (e) => e.textContent), '');
}

function e164(phone) {
  return phone.replace(/\s/g, '');
}

function launch() {
  return puppeteer.launch({
    executablePath: chromiumBinary(),
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run'],
    protocolTimeout: STEP_LIMIT_MS * 2,
  });
}

async function browserSuite(t, name, start) {
  const bundle = await zitadelClientBundle();
  const allowed = await pageServer(bundle);
  const refused = await pageServer(bundle);
  const key = support.signingKey();
  const service = await start({
    ...support.componentEnv(key),
    CORS_ALLOWED_ORIGINS: `https://*.example.com, ${allowed.origin}`,
  });
  const browser = await launch();
  t.after(async () => {
    await browser.close();
    await service.stop();
    await allowed.close();
    await refused.close();
  });
  const user = `browser-${name}`;
  const token = support.token(key, user);
  const page = await open(browser, allowed.origin, service.url, token);

  await t.test(`${name}: @zitadel/client over gRPC-Web sets, verifies and reads the phone`, async () => {
    const phone = '+41 79 555 10 00';
    const before = await service.smsCount();
    const set = await call(page, 'set', { phone }, 'grpc-web');
    assert.equal(set.ok, true, JSON.stringify(set));
    assert.equal(set.body.details.resourceOwner, support.ORG);
    const code = await service.code(e164(phone), before);
    const wrong = code === '000000' ? '111111' : '000000';
    // The status as the client reads it from grpc-status and grpc-message.
    const refusedCode = await call(page, 'verify', { code: wrong }, 'grpc-web');
    assert.deepEqual(refusedCode, { ok: false, code: 3, message: 'Code is invalid (COMMAND-sM0cs)' });
    const verified = await call(page, 'verify', { code }, 'grpc-web');
    assert.equal(verified.ok, true, JSON.stringify(verified));
    const got = await call(page, 'get', {}, 'grpc-web');
    assert.equal(got.ok, true, JSON.stringify(got));
    assert.deepEqual(got.body.phone, { phone: e164(phone), isPhoneVerified: true });
  });

  await t.test(`${name}: fetch with JSON sets and reads the phone and reads an error`, async () => {
    const phone = '+41 79 555 10 01';
    const set = await call(page, 'set', { phone }, 'json');
    assert.equal(set.ok, true, JSON.stringify(set));
    const got = await call(page, 'get', {}, 'json');
    assert.deepEqual(got.body.phone, { phone: e164(phone), isPhoneVerified: false });
    const bad = await call(page, 'set', { phone: 'not a number' }, 'json');
    assert.equal(bad.ok, false);
    assert.equal(bad.code, 3, JSON.stringify(bad));
    assert.match(bad.message, /phone/i);
  });

  await t.test(`${name}: the page's own screen sets and verifies a number`, async () => {
    await useScreen(page, service, '+41 79 555 10 02');
  });

  await t.test(`${name}: an origin outside CORS_ALLOWED_ORIGINS is blocked and changes nothing`, async () => {
    const outsider = await open(browser, refused.origin, service.url, token);
    const before = await service.smsCount();
    for (const transport of ['json', 'grpc-web']) {
      const set = await call(outsider, 'set', { phone: '+41 79 555 10 09' }, transport);
      assert.equal(set.ok, false, `${transport}: ${JSON.stringify(set)}`);
      // fetch fails outright (TypeError); connect-web reports the same failure as a status.
      const why = set.network || set.message;
      assert.match(why, /Failed to fetch/, `${transport}: ${JSON.stringify(set)}`);
      const get = await call(outsider, 'get', {}, transport);
      assert.equal(get.ok, false, `${transport}: ${JSON.stringify(get)}`);
    }
    await outsider.close();
    // The preflight was refused, so the PUT never ran: same number, no SMS.
    const got = await call(page, 'get', {}, 'json');
    assert.deepEqual(got.body.phone, { phone: '+41795551002', isPhoneVerified: true });
    assert.equal(await service.smsCount(), before);
  });
}

test('browser on the reference host', async (t) => {
  await browserSuite(t, 'reference host', async (env) => {
    const host = await support.startHost(env);
    return {
      url: host.url,
      smsCount: async () => host.smsLines().length,
      code: (phone, after) => host.code(phone, after),
      stop: () => host.stop(),
    };
  });
});

test('browser on wasmtime serve', async (t) => {
  await browserSuite(t, 'wasmtime serve', async (env) => {
    const serve = await support.startWasmtimeServe(env);
    return {
      url: serve.url,
      smsCount: async () => serve.webhook.count(),
      code: (phone, after) => serve.webhook.code(phone, after),
      stop: () => serve.stop(),
    };
  });
});

// scripts/serve: the reference host in development mode answers GET / with the page, signed in
// as the development user; same origin, no settings. The README's screenshot is taken here.
test('browser on the development front page', async (t) => {
  const host = await support.startHost({}, ['--dev']);
  const browser = await launch();
  t.after(async () => {
    await browser.close();
    await host.stop();
  });
  const page = await browser.newPage();
  page.setDefaultTimeout(STEP_LIMIT_MS);
  await page.setViewport({ width: 800, height: 720 });
  await page.goto(`${host.url}/`, { waitUntil: 'load' });
  await page.waitForFunction(() => document.querySelector('#state').textContent === 'No phone number set.');
  assert.match(await page.$eval('#token', (field) => field.value), /^ey[\w-]+\.[\w-]+\.[\w-]+$/);
  const service = {
    smsCount: async () => host.smsLines().length,
    code: (phone, after) => host.code(phone, after),
  };
  await useScreen(page, service, '+41 79 555 10 03');
  fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT });
});
