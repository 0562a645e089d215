// gRPC-Web (application/grpc-web+proto) over HTTP/1.1 with Node's fetch, framed by hand as the
// gRPC-Web protocol describes it: against the real `wasmtime serve` running the artifact built for
// it, and against the reference host.
'use strict';

const { defineMatrix } = require('./matrix.js');
const support = require('./support.js');

const SERVICE = 'zitadel.auth.v1.AuthService';
const packageDefinition = support.loadPhoneProto();
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

defineMatrix('gRPC-Web over HTTP/1.1 on wasmtime serve', async () => {
  const key = support.signingKey();
  const serve = await support.startWasmtimeServe(support.componentEnv(key));
  return {
    client: grpcWebClient(serve.url),
    key,
    org: support.ORG,
    smsCount: async () => serve.webhook.count(),
    code: (phone, after) => serve.webhook.code(phone, after),
    stop: () => serve.stop(),
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
