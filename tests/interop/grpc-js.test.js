// @grpc/grpc-js (what ZITADEL's Node SDK uses, through nice-grpc) over h2c against the reference
// host: every RPC's success and error answers.
'use strict';

const assert = require('node:assert/strict');
const http2 = require('node:http2');
const { test } = require('node:test');
const grpc = require('@grpc/grpc-js');
const { defineMatrix } = require('./matrix.js');
const support = require('./support.js');

const packageDefinition = support.loadPhoneProto();
const { AuthService } = grpc.loadPackageDefinition(packageDefinition).zitadel.auth.v1;

/// A grpc-js client with the answer shape the matrix wants.
function grpcJsClient(url) {
  const client = new AuthService(url.replace(/^http:\/\//, ''), grpc.credentials.createInsecure());
  return {
    close: () => client.close(),
    call: (method, request, bearer) =>
      new Promise((resolve) => {
        const metadata = new grpc.Metadata();
        if (bearer) metadata.set('authorization', `Bearer ${bearer}`);
        const deadline = new Date(Date.now() + support.CALL_LIMIT_MS);
        client[method](request, metadata, { deadline }, (error, response) => {
          if (!error) {
            resolve({ ok: true, response });
            return;
          }
          const [details] = error.metadata?.get('grpc-status-details-bin') ?? [];
          resolve({
            ok: false,
            code: error.code,
            message: error.details,
            status: details ? support.decodeStatus(details) : null,
          });
        });
      }),
  };
}

defineMatrix('grpc-js over h2c on the reference host', async () => {
  const key = support.signingKey();
  const host = await support.startHost(support.componentEnv(key));
  const client = grpcJsClient(host.url);
  return {
    client,
    key,
    org: support.ORG,
    smsCount: async () => host.smsLines().length,
    code: (phone, after) => host.code(phone, after),
    stop: async () => {
      client.close();
      await host.stop();
    },
  };
});

// What the gRPC spec asks of an error answer with no message: Trailers-Only, one HEADERS frame
// with END_STREAM carrying the status, no DATA and no separate trailers.
test('an error answer is Trailers-Only: one HEADERS frame with END_STREAM', async (t) => {
  const key = support.signingKey();
  const host = await support.startHost(support.componentEnv(key));
  const session = http2.connect(host.url);
  t.after(async () => {
    session.destroy();
    await host.stop();
  });
  const bearer = support.token(key, 'wire-user');
  for (const [method, message] of [
    ['SetMyPhone', Buffer.from([0x0a, 0x03, 0x61, 0x62, 0x63])], // phone "abc": invalid
    ['RemoveMyPhone', Buffer.alloc(0)], // no phone yet: 5
  ]) {
    const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, message.length]), message]);
    const seen = await new Promise((resolve, reject) => {
      const stream = session.request({
        ':method': 'POST',
        ':path': `/zitadel.auth.v1.AuthService/${method}`,
        'content-type': 'application/grpc',
        te: 'trailers',
        authorization: `Bearer ${bearer}`,
      });
      const timer = setTimeout(() => reject(new Error('no answer')), support.CALL_LIMIT_MS);
      const answer = { data: 0, trailers: null };
      stream.on('response', (headers, flags) => {
        answer.headers = headers;
        answer.endStream = Boolean(flags & http2.constants.NGHTTP2_FLAG_END_STREAM);
      });
      stream.on('trailers', (trailers) => {
        answer.trailers = trailers;
      });
      stream.on('data', (chunk) => {
        answer.data += chunk.length;
      });
      stream.on('close', () => {
        clearTimeout(timer);
        answer.rstCode = stream.rstCode;
        resolve(answer);
      });
      stream.on('error', () => {});
      stream.end(frame);
    });
    assert.equal(seen.headers[':status'], 200, method);
    assert.ok(seen.endStream, `${method}: the HEADERS frame ends the stream`);
    assert.equal(seen.trailers, null, `${method}: no trailers after a Trailers-Only answer`);
    assert.equal(seen.data, 0, method);
    assert.equal(seen.headers['grpc-status'], method === 'SetMyPhone' ? '3' : '5', method);
    assert.ok(seen.headers['grpc-status-details-bin'], method);
    assert.equal(seen.rstCode, http2.constants.NGHTTP2_NO_ERROR, method);
  }
});
