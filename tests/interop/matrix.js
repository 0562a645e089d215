// Every RPC's success and error answers, for any client that implements
//   call(method, request, token) -> { ok: true, response } | { ok: false, code, message, status }
// where `message` is the decoded grpc-message and `status` the decoded grpc-status-details-bin.
'use strict';

const assert = require('node:assert/strict');
const { test } = require('node:test');
const { signingKey, token } = require('./support.js');

/// One number per test, so that SMS lines and records never mix.
let nextNumber = 10;
function number() {
  nextNumber += 1;
  return `+41 71 000 00 ${String(nextNumber).padStart(2, '0')}`;
}
const e164 = (formatted) => formatted.replace(/ /g, '');

/// Asserts an error answer: code, message and the ErrorDetail id (or none when `id` is null).
function assertError(answer, code, text, id) {
  assert.equal(answer.ok, false, `expected code ${code}, got success ${JSON.stringify(answer)}`);
  const message = id ? `${text} (${id})` : text;
  assert.deepEqual(
    { code: answer.code, message: answer.message },
    { code, message },
    JSON.stringify(answer),
  );
  assert.ok(answer.status, 'grpc-status-details-bin is present');
  assert.equal(answer.status.code, code, 'google.rpc.Status code');
  assert.equal(answer.status.message, message, 'google.rpc.Status message');
  const details = answer.status.details.filter(
    (d) => d.typeUrl === 'type.googleapis.com/zitadel.v1.ErrorDetail',
  );
  if (id) {
    assert.deepEqual(details, [
      { typeUrl: 'type.googleapis.com/zitadel.v1.ErrorDetail', id, message: text },
    ]);
  } else {
    assert.deepEqual(details, []);
  }
}

function assertOk(answer) {
  assert.equal(answer.ok, true, `expected success, got ${JSON.stringify(answer)}`);
  return answer.response;
}

function assertDetails(details, sequence, org) {
  assert.equal(String(details.sequence), String(sequence), JSON.stringify(details));
  assert.equal(details.resourceOwner, org);
  assert.ok(Number(details.changeDate.seconds) > 1_700_000_000, JSON.stringify(details));
  assert.ok(Number(details.creationDate.seconds) > 1_700_000_000, JSON.stringify(details));
}

/// Registers the matrix under `name`. `setup()` resolves to
/// { client, key, org, code(phoneE164, afterCount), smsCount() , stop() }.
function defineMatrix(name, setup) {
  let env;
  let users = 0;
  const user = () => {
    users += 1;
    return `${name.replace(/\W+/g, '-')}-user-${users}`;
  };

  test(name, { timeout: 300_000 }, async (t) => {
    env = await setup();
    const { client, key, org } = env;
    t.after(() => env.stop());

    await t.test('SetMyPhone, GetMyPhone, VerifyMyPhone succeed; a wrong code is 3', async () => {
      const bearer = token(key, user());
      const phone = number();
      const before = await env.smsCount();
      const set = assertOk(await client.call('SetMyPhone', { phone }, bearer));
      assertDetails(set.details, 2, org);

      const got = assertOk(await client.call('GetMyPhone', {}, bearer));
      assertDetails(got.details, 2, org);
      assert.deepEqual(got.phone, { phone: e164(phone), isPhoneVerified: false });

      const code = await env.code(e164(phone), before);
      const wrong = code === '000000' ? '111111' : '000000';
      assertError(
        await client.call('VerifyMyPhone', { code: wrong }, bearer),
        3,
        'Code is invalid',
        'COMMAND-sM0cs',
      );
      const verified = assertOk(await client.call('VerifyMyPhone', { code }, bearer));
      // A wrong attempt is an event too: set (2), wrong code (3), verified (4).
      assertDetails(verified.details, 4, org);
      const after = assertOk(await client.call('GetMyPhone', {}, bearer));
      assert.deepEqual(after.phone, { phone: e164(phone), isPhoneVerified: true });
      assertError(
        await client.call('ResendMyPhoneVerification', {}, bearer),
        9,
        'Phone already verified',
        'COMMAND-2M9sf',
      );
    });

    await t.test('ResendMyPhoneVerification sends a new code that verifies', async () => {
      const bearer = token(key, user());
      const phone = number();
      const beforeSet = await env.smsCount();
      assertOk(await client.call('SetMyPhone', { phone }, bearer));
      // The first SMS goes out after the answer: wait for it, so it cannot pass for the resent one.
      await env.code(e164(phone), beforeSet);
      const before = await env.smsCount();
      const resent = assertOk(await client.call('ResendMyPhoneVerification', {}, bearer));
      assert.ok(Number(resent.details.sequence) > 2, JSON.stringify(resent));
      const code = await env.code(e164(phone), before);
      assertOk(await client.call('VerifyMyPhone', { code }, bearer));
    });

    await t.test('an unchanged number is 9, an invalid one 3, an empty one 3', async () => {
      const bearer = token(key, user());
      const phone = number();
      assertOk(await client.call('SetMyPhone', { phone }, bearer));
      assertError(
        await client.call('SetMyPhone', { phone: e164(phone) }, bearer),
        9,
        'Phone not changed',
        'COMMAND-wF94r',
      );
      assertError(
        await client.call('SetMyPhone', { phone: 'not a number' }, bearer),
        3,
        'Phone is invalid',
        'PHONE-so0wa',
      );
      assertError(
        await client.call('SetMyPhone', { phone: '' }, bearer),
        3,
        'invalid SetMyPhoneRequest.Phone: value length must be between 1 and 50 runes, inclusive',
        null,
      );
      // The errors changed nothing, and the channel still serves.
      const got = assertOk(await client.call('GetMyPhone', {}, bearer));
      assertDetails(got.details, 2, org);
    });

    await t.test('RemoveMyPhone succeeds once; without a phone it and its siblings are 5', async () => {
      const bearer = token(key, user());
      assertError(
        await client.call('RemoveMyPhone', {}, bearer),
        5,
        'Phone not found',
        'COMMAND-p6rsc',
      );
      assertError(
        await client.call('ResendMyPhoneVerification', {}, bearer),
        5,
        'Phone not found',
        'COMMAND-2b7Hf',
      );
      assertError(
        await client.call('VerifyMyPhone', { code: '123456' }, bearer),
        5,
        'Code not found',
        'COMMAND-Rsj8c',
      );
      assertOk(await client.call('SetMyPhone', { phone: number() }, bearer));
      const removed = assertOk(await client.call('RemoveMyPhone', {}, bearer));
      assertDetails(removed.details, 3, org);
      const got = assertOk(await client.call('GetMyPhone', {}, bearer));
      // As upstream: an empty Phone when there is none.
      assert.deepEqual(got.phone, { phone: '', isPhoneVerified: false });
      assertError(
        await client.call('RemoveMyPhone', {}, bearer),
        5,
        'Phone not found',
        'COMMAND-p6rsc',
      );
    });

    await t.test('a missing, forged or expired token is 16 on every RPC', async () => {
      const forged = token(signingKey(key.kid), user());
      const expired = token(key, user(), { exp: Math.floor(Date.now() / 1000) - 3600 });
      const requests = {
        SetMyPhone: { phone: number() },
        GetMyPhone: {},
        VerifyMyPhone: { code: '123456' },
        ResendMyPhoneVerification: {},
        RemoveMyPhone: {},
      };
      for (const [method, request] of Object.entries(requests)) {
        assertError(await client.call(method, request, null), 16, 'auth header missing', null);
        assertError(
          await client.call(method, request, forged),
          16,
          'Errors.Token.Invalid',
          'AUTH-7fs1e',
        );
        assertError(
          await client.call(method, request, expired),
          16,
          'Errors.Token.Invalid',
          'AUTH-7fs1e',
        );
      }
    });
  });
}

module.exports = { defineMatrix };
