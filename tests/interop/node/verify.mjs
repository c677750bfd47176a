// Verifies Latchkey access tokens the way a Node resource server would: jose's
// createRemoteJWKSet + jwtVerify.
//
// Usage:
//   node verify.mjs --issuer URL [--audience api] [--jwks-uri URL] [--refresh-token RT] [TOKEN...]
//
// Access tokens come from argv, or one per line on stdin when none are given. Each must verify
// with RS256 only, the issuer, the audience and `typ: at+jwt`; a tampered copy must be refused.
// The refresh token, when given, must be refused for its typ (and, on its own, its audience).
// Exits 0 when every check passes, 1 with a message naming the failed check otherwise.

import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import * as jose from "jose";

const joseVersion = JSON.parse(
  readFileSync(new URL("./node_modules/jose/package.json", import.meta.url), "utf8"),
).version;

class CheckFailed extends Error {}

function fail(message) {
  throw new CheckFailed(message);
}

function ok(message) {
  console.log(`ok: ${message}`);
}

const REQUIRED_CLAIMS = ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id"];

async function discoverJwksUri(issuer) {
  const url = issuer.replace(/\/$/, "") + "/.well-known/oauth-authorization-server";
  const response = await fetch(url);
  if (!response.ok) fail(`GET ${url}: HTTP ${response.status}`);
  const metadata = await response.json();
  if (metadata.issuer !== issuer) fail(`metadata issuer ${metadata.issuer} is not ${issuer}`);
  if (!metadata.jwks_uri) fail(`metadata at ${url} has no jwks_uri`);
  return metadata.jwks_uri;
}

function accessOptions(issuer, audience) {
  return {
    issuer,
    audience,
    typ: "at+jwt",
    algorithms: ["RS256"],
    requiredClaims: REQUIRED_CLAIMS,
  };
}

function describe(err) {
  return `${err.code ?? err.name}${err.claim ? ` (claim ${err.claim})` : ""}: ${err.message}`;
}

function tamperedCopies(token) {
  const [header, payload, signature] = token.split(".");
  const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
  claims.sub = `${claims.sub}-mallory`;
  claims.scope = `${claims.scope ?? ""} admin`.trim();
  const forgedPayload = Buffer.from(JSON.stringify(claims)).toString("base64url");
  const sig = Buffer.from(signature, "base64url");
  sig[sig.length >> 1] ^= 0x01;
  return [
    ["changed claims", `${header}.${forgedPayload}.${signature}`],
    ["flipped signature bit", `${header}.${payload}.${sig.toString("base64url")}`],
  ];
}

async function checkAccessToken(jwks, token, issuer, audience, index) {
  let verified;
  try {
    verified = await jose.jwtVerify(token, jwks, accessOptions(issuer, audience));
  } catch (err) {
    fail(`access token #${index} was refused: ${describe(err)}`);
  }
  const { payload, protectedHeader } = verified;
  if (protectedHeader.alg !== "RS256") fail(`access token #${index}: alg ${protectedHeader.alg}`);
  if (!protectedHeader.kid) fail(`access token #${index}: no kid`);
  if (payload.roles !== undefined && !Array.isArray(payload.roles)) {
    fail(`access token #${index}: roles is not an array: ${JSON.stringify(payload.roles)}`);
  }
  ok(
    `access token #${index} verified (sub ${payload.sub}, client_id ${payload.client_id}, ` +
      `scope ${JSON.stringify(payload.scope)}, aud ${JSON.stringify(payload.aud)})`,
  );

  for (const [what, forged] of tamperedCopies(token)) {
    try {
      await jose.jwtVerify(forged, jwks, accessOptions(issuer, audience));
    } catch (err) {
      if (err.code === "ERR_JWS_SIGNATURE_VERIFICATION_FAILED") {
        ok(`access token #${index} with ${what} refused (${err.code})`);
        continue;
      }
      fail(`access token #${index} with ${what} refused, but not for its signature: ${describe(err)}`);
    }
    fail(`access token #${index} with ${what} was ACCEPTED`);
  }
}

async function checkRefreshToken(jwks, token, issuer, audience) {
  try {
    await jose.jwtVerify(token, jwks, accessOptions(issuer, audience));
    fail(`a refresh token was ACCEPTED as an access token for audience ${audience}`);
  } catch (err) {
    if (err instanceof CheckFailed) throw err;
    if (err.code !== "ERR_JWT_CLAIM_VALIDATION_FAILED" || err.claim !== "typ") {
      fail(`refresh token refused, but not for its typ: ${describe(err)}`);
    }
    ok(`refresh token refused as an access token (${describe(err)})`);
  }

  // Its signature is good, and its audience alone also keeps it out.
  let header;
  try {
    ({ protectedHeader: header } = await jose.jwtVerify(token, jwks, { issuer, algorithms: ["RS256"] }));
  } catch (err) {
    fail(`the refresh token does not verify against the JWKS: ${describe(err)}`);
  }
  if (header.typ !== "rt+jwt") fail(`refresh token typ is ${header.typ}, not rt+jwt`);
  try {
    await jose.jwtVerify(token, jwks, { issuer, audience, algorithms: ["RS256"] });
    fail(`the refresh token carries the access audience ${audience}`);
  } catch (err) {
    if (err instanceof CheckFailed) throw err;
    if (err.code !== "ERR_JWT_CLAIM_VALIDATION_FAILED" || err.claim !== "aud") {
      fail(`refresh token refused, but not for its audience: ${describe(err)}`);
    }
    ok(`refresh token's audience is not ${audience}`);
  }
}

async function main() {
  const { values, positionals } = parseArgs({
    options: {
      issuer: { type: "string" },
      audience: { type: "string", default: "api" },
      "jwks-uri": { type: "string" },
      "refresh-token": { type: "string" },
    },
    allowPositionals: true,
  });
  if (!values.issuer) fail("--issuer is required");
  const tokens = positionals.length
    ? positionals
    : readFileSync(0, "utf8").split("\n").map((l) => l.trim()).filter(Boolean);
  if (tokens.length === 0) fail("no access token given (argv or stdin)");

  const jwksUri = values["jwks-uri"] ?? (await discoverJwksUri(values.issuer));
  const jwks = jose.createRemoteJWKSet(new URL(jwksUri));
  for (const [i, token] of tokens.entries()) {
    await checkAccessToken(jwks, token, values.issuer, values.audience, i + 1);
  }
  if (values["refresh-token"]) {
    await checkRefreshToken(jwks, values["refresh-token"], values.issuer, values.audience);
  }
  console.log(`verify.mjs: all checks passed (jose ${joseVersion}, node ${process.version}, ${tokens.length} access tokens)`);
}

main().catch((err) => {
  const message = err instanceof CheckFailed ? err.message : `${err.name}: ${err.stack ?? err.message}`;
  console.error(`FAIL (jose ${joseVersion}): ${message}`);
  process.exitCode = 1;
});
