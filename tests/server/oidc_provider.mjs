// A real OpenID Provider for the tests: panva's certified node-oidc-provider, with its development
// interactions (a login form that accepts any login name, then a consent form).
//
// Environment:
//   OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_REDIRECT_URI  the one registered client
//   OIDC_ACCOUNTS  JSON object: login name -> claims, e.g. {"ann": {"email": "ann@example.com",
//                  "email_verified": true}}; any other login name signs in with no email claim
//
// Listens on a free port of 127.0.0.1 and prints its issuer URL as the first line on stdout.
import http from "node:http";

import Provider from "oidc-provider";

const accounts = JSON.parse(process.env.OIDC_ACCOUNTS ?? "{}");
const server = http.createServer();

server.listen(0, "127.0.0.1", () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: process.env.OIDC_CLIENT_ID,
        client_secret: process.env.OIDC_CLIENT_SECRET,
        redirect_uris: [process.env.OIDC_REDIRECT_URI],
        response_types: ["code"],
        grant_types: ["authorization_code"],
      },
    ],
    claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"] },
    cookies: { keys: ["km-test-cookie-key"] },
    pkce: { required: () => true },
    async findAccount(_ctx, sub) {
      return {
        accountId: sub,
        async claims() {
          return { sub, ...(accounts[sub] ?? {}) };
        },
      };
    },
  });
  provider.on("server_error", (_ctx, err) => console.error("oidc-provider:", err));
  server.on("request", provider.callback());
  console.log(issuer);
});

for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => server.close(() => process.exit(0)));
