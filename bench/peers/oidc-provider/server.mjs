// The node peer: panva's oidc-provider issuing JWT access tokens (RS256) with the
// client_credentials grant. Resource indicators make it issue JWTs instead of opaque tokens.
// Its default in-memory adapter holds state; JWT access tokens need none.
//
// PEER_PORT, PEER_PRIVATE_KEY (PKCS#8 PEM), PEER_CLIENT_SECRET, PEER_WORKERS (node cluster
// workers; 1 = a single process, as its examples run). Only for bench/run; loopback only.
import cluster from 'node:cluster';
import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const port = Number(process.env.PEER_PORT || 8097);
const workers = Number(process.env.PEER_WORKERS || 1);

if (workers > 1 && cluster.isPrimary) {
  for (let i = 0; i < workers; i += 1) cluster.fork();
  cluster.on('exit', (worker, code) => {
    console.error(`worker ${worker.process.pid} exited with ${code}`);
  });
} else {
  const jwk = createPrivateKey(readFileSync(process.env.PEER_PRIVATE_KEY)).export({ format: 'jwk' });
  const resource = 'urn:bench:api';
  const provider = new Provider(`http://127.0.0.1:${port}`, {
    clients: [{
      client_id: 'svc',
      client_secret: process.env.PEER_CLIENT_SECRET,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: 'read',
    }],
    jwks: { keys: [{ ...jwk, use: 'sig', alg: 'RS256', kid: 'peer-1' }] },
    scopes: ['read'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => resource,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          scope: 'read',
          audience: resource,
          accessTokenTTL: 900,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
  });
  provider.listen(port, '127.0.0.1');
}
