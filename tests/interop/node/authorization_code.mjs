// openid-client, as a web app's back end would use it for sign-in in a browser: discover the
// issuer through OpenID Connect discovery, make the authorization URL with PKCE (S256), state
// and nonce, then, given the URL the browser came back to, check the response (state, iss),
// redeem the code, validate the ID token (signature through the JWKS, iss, aud, nonce) and
// fetch the user's profile from the UserInfo endpoint.
//
// usage: node authorization_code.mjs start --issuer URL --client ID --redirect URI
//          prints {"url", "verifier", "state", "nonce"} as JSON
//        node authorization_code.mjs finish --issuer URL --client ID --callback URL
//          --verifier V --state S --nonce N --user NAME

import { parseArgs } from "node:util";
import * as client from "openid-client";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    issuer: { type: "string" },
    client: { type: "string" },
    redirect: { type: "string" },
    callback: { type: "string" },
    verifier: { type: "string" },
    state: { type: "string" },
    nonce: { type: "string" },
    user: { type: "string" },
  },
});

function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

// A public client: it authenticates with its client_id alone.
const config = await client.discovery(
  new URL(values.issuer),
  values.client,
  undefined,
  client.None(),
  { execute: [client.allowInsecureRequests] },
);

if (positionals[0] === "start") {
  const metadata = config.serverMetadata();
  if (!metadata.code_challenge_methods_supported?.includes("S256")) {
    fail("the metadata does not list S256");
  }
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: values.redirect,
    scope: "openid read",
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
    state,
    nonce,
  });
  console.log(JSON.stringify({ url: url.href, verifier, state, nonce }));
} else if (positionals[0] === "finish") {
  const tokens = await client.authorizationCodeGrant(config, new URL(values.callback), {
    pkceCodeVerifier: values.verifier,
    expectedState: values.state,
    expectedNonce: values.nonce,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  if (claims?.sub !== values.user || claims.aud !== values.client) {
    fail(`ID token claims: ${JSON.stringify(claims)}`);
  }
  if (!tokens.refresh_token) {
    fail("no refresh token");
  }
  const profile = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  if (profile.sub !== values.user) {
    fail(`userinfo: ${JSON.stringify(profile)}`);
  }
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  if (!refreshed.access_token) {
    fail("the refresh token was not accepted");
  }
  console.log(`ok: ${claims.sub} signed in to ${claims.aud}; ID token, userinfo and refresh checked`);
} else {
  fail("the first argument is start or finish");
}
