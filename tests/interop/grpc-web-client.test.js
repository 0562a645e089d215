// Google's published gRPC-Web client (npm `grpc-web`, the runtime of code generated with
// protoc-gen-grpc-web) in its default text mode (application/grpc-web-text) and in binary mode,
// on the reference host. It runs on XMLHttpRequest; Node gets one from `xhr2`.
'use strict';

const assert = require('node:assert/strict');
const grpcWeb = require('grpc-web');
const { defineMatrix } = require('./matrix.js');
const support = require('./support.js');

/// Content types the client sent and got, so each run proves which mode it spoke.
const seen = { sent: new Set(), answered: new Set() };
globalThis.XMLHttpRequest = class extends require('xhr2') {
  setRequestHeader(name, value) {
    if (name.toLowerCase() === 'content-type') seen.sent.add(value);
    return super.setRequestHeader(name, value);
  }
  getResponseHeader(name) {
    const value = super.getResponseHeader(name);
    if (name.toLowerCase() === 'content-type' && value) seen.answered.add(value);
    return value;
  }
};

const SERVICE = 'zitadel.auth.v1.AuthService';
const methods = support.loadPhoneProto()[SERVICE];

/// The matrix's client shape over grpc-web's GrpcWebClientBase in `format` ('text' or 'binary').
function publishedClient(url, format) {
  const client = new grpcWeb.GrpcWebClientBase({ format });
  const descriptors = {};
  const descriptor = (method) => {
    descriptors[method] ??= new grpcWeb.MethodDescriptor(
      `/${SERVICE}/${method}`,
      grpcWeb.MethodType.UNARY,
      Object,
      Object,
      (request) => new Uint8Array(methods[method].requestSerialize(request)),
      (bytes) => methods[method].responseDeserialize(Buffer.from(bytes)),
    );
    return descriptors[method];
  };
  return {
    call: async (method, request, bearer) => {
      const metadata = bearer ? { authorization: `Bearer ${bearer}` } : {};
      // The client's own deadline header is grpc-timeout; a stuck call still fails the test.
      metadata.deadline = String(Date.now() + support.CALL_LIMIT_MS);
      try {
        const response = await client.thenableCall(
          `${url}/${SERVICE}/${method}`,
          request,
          metadata,
          descriptor(method),
        );
        return { ok: true, response };
      } catch (error) {
        if (!(error instanceof grpcWeb.RpcError)) throw error;
        const details = error.metadata?.['grpc-status-details-bin'];
        return {
          ok: false,
          code: error.code,
          message: error.message,
          status: details ? support.decodeStatus(Buffer.from(details, 'base64')) : null,
        };
      }
    },
  };
}

const CONTENT_TYPES = {
  text: { sent: 'application/grpc-web-text', answered: 'application/grpc-web-text+proto' },
  binary: { sent: 'application/grpc-web+proto', answered: 'application/grpc-web+proto' },
};

for (const format of ['text', 'binary']) {
  defineMatrix(`grpc-web (npm, ${format} mode) on the reference host`, async () => {
    const key = support.signingKey();
    const host = await support.startHost(support.componentEnv(key));
    seen.sent.clear();
    seen.answered.clear();
    return {
      client: publishedClient(host.url, format),
      key,
      org: support.ORG,
      smsCount: async () => host.smsLines().length,
      code: (phone, after) => host.code(phone, after),
      stop: async () => {
        await host.stop();
        // Every request of this run was in `format`, and so was every answer.
        assert.deepEqual([...seen.sent], [CONTENT_TYPES[format].sent], 'request content types');
        assert.deepEqual([...seen.answered], [CONTENT_TYPES[format].answered], 'answer content types');
      },
    };
  });
}
