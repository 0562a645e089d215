// Bundled by esbuild for the browser test's page (browser.test.js): ZITADEL's published web
// client, @zitadel/client, over connect-web's gRPC-Web transport, as a ZITADEL web app uses it.
// web/index.html calls window.SetMyPhoneGrpcWeb.call when "gRPC-Web" is chosen.
import { ConnectError } from '@connectrpc/connect';
import { createAuthServiceClient } from '@zitadel/client/v1';
import { createClientTransport } from '@zitadel/client/web';

// Messages hold BigInts (uint64 sequences, timestamps): plain JSON for the page and the test.
function plain(message) {
  return JSON.parse(
    JSON.stringify(message, (key, value) => {
      if (key === '$typeName') return undefined;
      return typeof value === 'bigint' ? value.toString() : value;
    }),
  );
}

window.SetMyPhoneGrpcWeb = {
  /// One AuthService RPC; resolves to {ok, body} or {ok: false, code, message} (gRPC status).
  async call(baseUrl, token, method, request) {
    const client = createAuthServiceClient(createClientTransport(token, { baseUrl }));
    try {
      return { ok: true, body: plain(await client[method](request)) };
    } catch (error) {
      const status = ConnectError.from(error);
      return { ok: false, code: status.code, message: status.rawMessage };
    }
  },
};
