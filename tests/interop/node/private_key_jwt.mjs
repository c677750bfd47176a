// openid-client, as a service would use it: discover the issuer (RFC 8414), authenticate with
// private_key_jwt using the PKCS#8 private key on stdin, take a client_credentials token, and
// introspect and revoke it, each request with an assertion of its own.
//
// usage: node private_key_jwt.mjs --issuer URL --client ID --alg RS256|ES256|EdDSA --kid KID < key.pem

import { parseArgs } from "node:util";
import { readFileSync } from "node:fs";
import * as client from "openid-client";
import { importPKCS8 } from "jose";

const { values } = parseArgs({
  options: {
    issuer: { type: "string" },
    client: { type: "string" },
    alg: { type: "string" },
    kid: { type: "string" },
  },
});

function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

const pem = readFileSync(0, "utf8");
const key = await importPKCS8(pem, values.alg);
const config = await client.discovery(
  new URL(values.issuer),
  values.client,
  undefined,
  client.PrivateKeyJwt({ key, kid: values.kid }),
  { algorithm: "oauth2", execute: [client.allowInsecureRequests] },
);

const metadata = config.serverMetadata();
if (!metadata.token_endpoint_auth_methods_supported?.includes("private_key_jwt")) {
  fail("the metadata does not list private_key_jwt");
}

const tokens = await client.clientCredentialsGrant(config);
if (!tokens.access_token || tokens.token_type.toLowerCase() !== "bearer") {
  fail(`no bearer token: ${JSON.stringify(tokens)}`);
}
const introspected = await client.tokenIntrospection(config, tokens.access_token);
if (introspected.active !== true || introspected.client_id !== values.client) {
  fail(`introspection: ${JSON.stringify(introspected)}`);
}
await client.tokenRevocation(config, tokens.access_token);
const after = await client.tokenIntrospection(config, tokens.access_token);
if (after.active !== false) {
  fail(`still active after revocation: ${JSON.stringify(after)}`);
}
console.log(`ok: ${values.alg} client ${values.client} took, introspected and revoked a token`);
