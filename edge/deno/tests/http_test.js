// wasi:http outgoing requests over fetch, driven the way the SMS provider component drives
// them (handle before the body is written, poll the future, read the body in chunks).

import { Fields, OutgoingBody, OutgoingRequest, RequestOptions, outgoingHandler } from "../../glue/http.js";
import { poll, timerPollable } from "../../glue/io.js";

function assertEquals(actual, expected, message) {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) {
    throw new Error(`${message}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

Deno.test("an outgoing POST reaches a loopback server and its answer is read back", async () => {
  let seen;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    seen = { method: request.method, path: new URL(request.url).pathname, type: request.headers.get("content-type"), body: await request.text() };
    return new Response("x".repeat(100_000), { status: 202, headers: { "x-message-id": "m-1" } });
  });
  try {
    const enc = new TextEncoder();
    const request = new OutgoingRequest(Fields.fromList([["content-type", enc.encode("application/json")]]));
    request.setMethod({ tag: "post" });
    request.setScheme({ tag: "HTTP" });
    request.setAuthority(`127.0.0.1:${server.addr.port}`);
    request.setPathWithQuery("/hook?x=1");
    const body = request.body();
    const options = new RequestOptions();
    options.setFirstByteTimeout(5_000_000_000n);
    const future = outgoingHandler().handle(request, options);
    const stream = body.write();
    stream.checkWrite();
    stream.write(enc.encode('{"a":'));
    stream.write(enc.encode("1}"));
    stream.flush();
    OutgoingBody.finish(body, undefined);

    const timer = timerPollable(10_000);
    const ready = await poll([future.subscribe(), timer]);
    timer[Symbol.dispose]();
    assertEquals([...ready], [0], "the response came first");
    const result = future.get();
    assertEquals([result.tag, result.val.tag], ["ok", "ok"], "ok(ok(response))");
    const response = result.val.val;
    assertEquals(response.status(), 202, "status");
    assertEquals(new TextDecoder().decode(response.headers().get("x-message-id")[0]), "m-1", "header");
    const input = response.consume().stream();
    let length = 0;
    for (;;) {
      try {
        length += (await input.blockingRead(65536n)).length;
      } catch (e) {
        assertEquals(e, { tag: "closed" }, "end of body");
        break;
      }
    }
    assertEquals(length, 100_000, "whole body read");
    assertEquals(seen, { method: "POST", path: "/hook", type: "application/json", body: '{"a":1}' }, "what the server saw");
  } finally {
    await server.shutdown();
  }
});

Deno.test("a refused connection is an error code, not a throw", async () => {
  // A port that was free a moment ago (fetch blocks well-known "bad" ports such as 9 itself).
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const request = new OutgoingRequest(new Fields());
  request.setScheme({ tag: "HTTP" });
  request.setAuthority(`127.0.0.1:${port}`);
  const future = outgoingHandler().handle(request, undefined);
  await future.subscribe().block();
  const result = future.get();
  assertEquals([result.tag, result.val.tag], ["ok", "err"], "ok(err(code))");
  assertEquals(result.val.val, { tag: "connection-refused" }, "the error code says the connection was refused");
});
