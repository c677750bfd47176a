"""The issuer's public keys, parsed once per key-set fetch. Each key carries the one algorithm
it verifies, so a token's header can never choose another (RFC 8725 §3.1). HMAC is absent on
purpose: a resource server holds no shared secret, and a "key" from a public key set must never
become one."""

from __future__ import annotations

import json
import logging
from typing import Any, Dict, Optional

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import Algorithm, ECAlgorithm, OKPAlgorithm, RSAAlgorithm, RSAPSSAlgorithm

logger = logging.getLogger("latchkey_verify")

RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_HASHES = {"256": RSAAlgorithm.SHA256, "384": RSAAlgorithm.SHA384, "512": RSAAlgorithm.SHA512}
_CURVES = {"P-256": "ES256", "P-384": "ES384"}


def _algorithm(name: str) -> Algorithm:
    if name.startswith("RS"):
        return RSAAlgorithm(_HASHES[name[2:]])
    if name.startswith("PS"):
        return RSAPSSAlgorithm(_HASHES[name[2:]])
    if name == "ES256":
        return ECAlgorithm(ECAlgorithm.SHA256)
    if name == "ES384":
        return ECAlgorithm(ECAlgorithm.SHA384)
    return OKPAlgorithm()


class VerifyKey:
    """One verification key: its algorithm and the parsed public key."""

    __slots__ = ("algorithm", "_key", "_verifier")

    def __init__(self, algorithm: str, key: Any) -> None:
        self.algorithm = algorithm
        self._key = key
        self._verifier = _algorithm(algorithm)

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Checks ``signature`` over ``message`` with this key and only its algorithm."""
        try:
            return bool(self._verifier.verify(message, self._key, signature))
        except Exception:  # a signature of the wrong length or shape is simply invalid
            return False


def parse_jwk(jwk: Dict[str, Any]) -> "tuple[str, VerifyKey]":
    """Parses one JWK; raises ``ValueError`` saying why it cannot verify tokens."""
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid:
        raise ValueError("the key has no kid")
    use = jwk.get("use")
    if use is not None and use != "sig":
        raise ValueError(f"key {kid} is not for signatures")
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        raise ValueError(f"key {kid} may not verify")
    declared: Optional[str] = jwk.get("alg")
    if declared is not None and not isinstance(declared, str):
        raise ValueError(f"key {kid} has an unusable alg")
    kty = jwk.get("kty")
    text = json.dumps(jwk)
    key: Any
    if kty == "RSA":
        algorithm = declared or "RS256"
        if algorithm not in RSA_ALGORITHMS:
            raise ValueError(f"key {kid}: RSA key with alg {algorithm}")
        key = RSAAlgorithm.from_jwk(text)
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError(f"key {kid} is not a public key")
        if key.key_size < 2048:
            raise ValueError(f"key {kid}: RSA keys under 2048 bits are refused")
    elif kty == "EC":
        curve = jwk.get("crv")
        if curve not in _CURVES:
            raise ValueError(f"key {kid}: unsupported curve")
        algorithm = _CURVES[curve]
        if declared is not None and declared != algorithm:
            raise ValueError(f"key {kid}: alg does not match its curve")
        key = ECAlgorithm.from_jwk(text)
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError(f"key {kid} is not a public key")
    elif kty == "OKP" and jwk.get("crv") == "Ed25519":
        algorithm = "EdDSA"
        if declared is not None and declared != algorithm:
            raise ValueError(f"key {kid}: alg does not match Ed25519")
        key = OKPAlgorithm.from_jwk(text)
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise ValueError(f"key {kid} is not a public key")
    else:
        raise ValueError(f"key {kid}: unsupported key type")
    return kid, VerifyKey(algorithm, key)


def parse_key_set(body: bytes) -> Dict[str, VerifyKey]:
    """Parses an RFC 7517 key set. Keys that cannot verify tokens (HMAC, encryption keys,
    unknown types, malformed) are left out, each with a warning; the rest are kept. Raises
    ``ValueError`` if the document is not a key set at all."""
    try:
        document = json.loads(body)
    except ValueError as error:
        raise ValueError(f"not a JWK set: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK set: no keys array")
    keys: Dict[str, VerifyKey] = {}
    for jwk in document["keys"]:
        try:
            if not isinstance(jwk, dict):
                raise ValueError("not a JWK")
            kid, key = parse_jwk(jwk)
        except Exception as error:  # one unusable key never hides the others
            logger.warning("ignoring a key of the issuer's key set: %s", error)
            continue
        keys[kid] = key
    return keys
