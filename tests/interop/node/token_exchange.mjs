// openid-client performs an RFC 8693 token exchange, as a service would to call another one for
// a user: discover the issuer (RFC 8414), authenticate with the client secret on stdin (HTTP
// Basic), trade the user's access token for one for another audience, and introspect the result.
//
// usage: node token_exchange.mjs --issuer URL --client ID --subject-token JWT --audience AUD
//        --scope SCOPE --user NAME < secret

import { parseArgs } from "node:util";
import { readFileSync } from "node:fs";
import * as client from "openid-client";
import { decodeJwt } from "jose";

const GRANT = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token";

const { values } = parseArgs({
  options: {
    issuer: { type: "string" },
    client: { type: "string" },
    "subject-token": { type: "string" },
    audience: { type: "string" },
    scope: { type: "string" },
    user: { type: "string" },
  },
});

function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

const secret = readFileSync(0, "utf8").trim();
const config = await client.discovery(
  new URL(values.issuer),
  values.client,
  undefined,
  client.ClientSecretBasic(secret),
  { algorithm: "oauth2", execute: [client.allowInsecureRequests] },
);

if (!config.serverMetadata().grant_types_supported?.includes(GRANT)) {
  fail("the metadata does not list the token-exchange grant");
}

const tokens = await client.genericGrantRequest(config, GRANT, {
  subject_token: values["subject-token"],
  subject_token_type: ACCESS_TOKEN,
  audience: values.audience,
  scope: values.scope,
});
if (tokens.issued_token_type !== ACCESS_TOKEN) {
  fail(`issued_token_type: ${JSON.stringify(tokens)}`);
}
if (tokens.refresh_token !== undefined) {
  fail("a refresh token was issued");
}
if (tokens.token_type.toLowerCase() !== "bearer" || tokens.scope !== values.scope) {
  fail(`token response: ${JSON.stringify(tokens)}`);
}
const claims = decodeJwt(tokens.access_token);
if (
  claims.sub !== values.user ||
  claims.aud !== values.audience ||
  claims.client_id !== values.client ||
  claims.act?.sub !== values.client
) {
  fail(`claims: ${JSON.stringify(claims)}`);
}
const introspected = await client.tokenIntrospection(config, tokens.access_token);
if (introspected.active !== true || introspected.sub !== values.user) {
  fail(`introspection: ${JSON.stringify(introspected)}`);
}
console.log(`ok: ${values.client} exchanged ${values.user}'s token for audience ${values.audience}`);
