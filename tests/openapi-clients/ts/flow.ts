// The Latchkey flow through openapi-fetch, typed by openapi-typescript from
// openapi/openapi.json (generated into gen/schema.d.ts at test time, never edited): register,
// log in (password grant, public client), refresh, userinfo, revoke, introspect (confidential
// client, HTTP Basic), an admin token (scope admin, through the admin client), admin list users,
// and userinfo refusing the admin token. tsc checks every call against the generated types.
//
// Usage: node gen/out/flow.js --base-url URL --public-client ID --confidential-client ID
//        --admin-client ID --admin USER, with CLIENT_SECRET and ADMIN_PASSWORD in the
//        environment.
import { parseArgs } from "node:util";
import createClient from "openapi-fetch";
import type { paths } from "./gen/schema.js";

const { values } = parseArgs({
  options: {
    "base-url": { type: "string" },
    "public-client": { type: "string" },
    "confidential-client": { type: "string" },
    "admin-client": { type: "string" },
    admin: { type: "string" },
  },
});
const need = (value: string | undefined, what: string): string => {
  if (!value) throw new Error(`${what} is required`);
  return value;
};
const baseUrl = need(values["base-url"], "--base-url");
const publicClient = need(values["public-client"], "--public-client");
const confidentialClient = need(values["confidential-client"], "--confidential-client");
const adminClient = need(values["admin-client"], "--admin-client");
const adminUser = need(values.admin, "--admin");
const secret = need(process.env.CLIENT_SECRET, "CLIENT_SECRET");
const adminPassword = need(process.env.ADMIN_PASSWORD, "ADMIN_PASSWORD");

function check(condition: unknown, message: string): asserts condition {
  if (!condition) {
    console.error(`FAILED: ${message}`);
    process.exit(1);
  }
}

function ok<T>(what: string, result: { data?: T; error?: unknown; response: Response }, status: number): T {
  check(
    result.response.status === status && result.data !== undefined,
    `${what}: expected ${status}, got ${result.response.status} ${JSON.stringify(result.error)}`,
  );
  console.log(`ok  ${what}: ${result.response.status}`);
  return result.data;
}

const client = createClient<paths>({ baseUrl });
const basic = `Basic ${Buffer.from(`${confidentialClient}:${secret}`).toString("base64")}`;
const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

const username = "ts-client-user";
const password = "generated clients work";

const profile = ok(
  "register",
  await client.POST("/users", { body: { username, password } }),
  201,
);
check(profile.username === username, `registered username ${profile.username}`);

const login = (user: string, pw: string) =>
  client.POST("/oauth/token", {
    body: { grant_type: "password", username: user, password: pw, client_id: publicClient },
  });

const tokens = ok("password grant", await login(username, password), 200);
check(tokens.token_type === "Bearer", `token_type ${tokens.token_type}`);
check(typeof tokens.refresh_token === "string", "a refresh token is issued");

const wrong = await login(username, "not the password");
check(wrong.response.status === 400 && wrong.error?.error === "invalid_grant",
  `wrong password: ${wrong.response.status} ${JSON.stringify(wrong.error)}`);
console.log("ok  password grant with a wrong password: 400");

const refreshed = ok(
  "refresh",
  await client.POST("/oauth/token", {
    body: { grant_type: "refresh_token", refresh_token: tokens.refresh_token, client_id: publicClient },
  }),
  200,
);
check(refreshed.refresh_token !== tokens.refresh_token, "the refresh token rotates");

const me = ok(
  "userinfo",
  await client.GET("/userinfo", { headers: bearer(refreshed.access_token) }),
  200,
);
check(me.username === username, `userinfo username ${me.username}`);

const active = ok(
  "introspect a live token",
  await client.POST("/oauth/introspect", {
    body: { token: refreshed.access_token },
    headers: { Authorization: basic },
  }),
  200,
);
check(active.active === true && active.username === username, `introspection ${JSON.stringify(active)}`);

const revoked = await client.POST("/oauth/revoke", {
  body: { token: refreshed.access_token, client_id: publicClient },
  parseAs: "text",
});
check(revoked.response.status === 200, `revoke: ${revoked.response.status}`);
console.log("ok  revoke: 200");

const inactive = ok(
  "introspect the revoked token",
  await client.POST("/oauth/introspect", {
    body: { token: refreshed.access_token },
    headers: { Authorization: basic },
  }),
  200,
);
check(inactive.active === false && inactive.username === undefined, `introspection ${JSON.stringify(inactive)}`);

const denied = await client.GET("/userinfo", { headers: bearer(refreshed.access_token) });
check(denied.response.status === 401 && denied.error?.error === "invalid_token",
  `userinfo after revoke: ${denied.response.status} ${JSON.stringify(denied.error)}`);
console.log("ok  userinfo after revoke: 401");

// An ordinary token of the admin's is not for the admin API; one asked for with scope admin is,
// and only for it.
const ordinary = ok("admin's ordinary login", await login(adminUser, adminPassword), 200);
const refused = await client.GET("/admin/users", { headers: bearer(ordinary.access_token) });
check(refused.response.status === 401 && refused.error?.error === "invalid_token",
  `list users with an ordinary token: ${refused.response.status} ${JSON.stringify(refused.error)}`);
console.log("ok  list users with an ordinary token: 401");

const adminTokens = ok(
  "admin login (scope admin)",
  await client.POST("/oauth/token", {
    body: {
      grant_type: "password",
      username: adminUser,
      password: adminPassword,
      client_id: adminClient,
      scope: "admin",
    },
  }),
  200,
);
check(adminTokens.scope === "admin", `admin token scope ${adminTokens.scope}`);
const page = ok(
  "list users",
  await client.GET("/admin/users", {
    params: { query: { limit: 100 } },
    headers: bearer(adminTokens.access_token),
  }),
  200,
);
const names = page.users.map((user) => user.username);
check(names.includes(username) && names.includes(adminUser), `listed users ${names}`);
const elsewhere = await client.GET("/userinfo", { headers: bearer(adminTokens.access_token) });
check(elsewhere.response.status === 401 && elsewhere.error?.error === "invalid_token",
  `userinfo with the admin token: ${elsewhere.response.status} ${JSON.stringify(elsewhere.error)}`);
console.log("ok  userinfo with the admin token: 401");
console.log("typescript client: every step passed");
