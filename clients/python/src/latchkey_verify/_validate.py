"""Access-token validation per RFC 9068 §4 and RFC 8725, on keys already fetched: no network.

The order, as latchkey-verify (Rust) does it: size and shape; the header (strict JSON, exactly
``alg``, ``typ`` and ``kid``, each once, ``typ`` = ``at+jwt``); the key named by ``kid``, whose
own algorithm must be the header's; the signature; then the claims (strict JSON, ``iss``
exact, ``aud`` includes ours, ``exp``, ``nbf`` and ``iat`` with leeway, RFC 9068's required
claims)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ._errors import InvalidToken, refused
from ._keys import VerifyKey
from ._token import AccessToken, actor_chain

#: Tokens of this issuer are well under 2 KiB; anything near this is hostile.
DEFAULT_MAX_TOKEN_BYTES = 8 * 1024
#: The largest leeway allowed, in seconds: the issuer keeps a revocation in its feed for 300 s
#: past the revoked token's ``exp``, so a verifier that accepted tokens longer past ``exp`` and
#: started, or resynchronised, in between would not know they were revoked.
MAX_LEEWAY = 300
MAX_HEADER_BYTES = 1024
MAX_SIGNATURE_BYTES = 1024
MAX_KID_BYTES = 256
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
#: A UTF-16 surrogate code point. ``json`` turns an escaped pair into the character it encodes,
#: so one left in a decoded string came from an unpaired ``\udXXX`` escape.
_SURROGATE = re.compile("[\ud800-\udfff]")


class Expectations:
    """What a token must match, fixed at configuration time."""

    __slots__ = ("issuer", "audience", "leeway", "max_token_bytes")

    def __init__(self, issuer: str, audience: str, leeway: int, max_token_bytes: int) -> None:
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.max_token_bytes = max_token_bytes


class UnknownKey(Exception):
    """The header names a ``kid`` the cached key set lacks."""

    def __init__(self, kid: str) -> None:
        super().__init__(kid)
        self.kid = kid


def malformed() -> InvalidToken:
    return refused("malformed", "the token is malformed")


def forbidden_header() -> InvalidToken:
    return refused("forbidden_header", "the token's header is not acceptable")


def unknown_key() -> InvalidToken:
    return refused("unknown_key", "the token names no key of the issuer")


def _decode(part: str, max_bytes: int) -> bytes:
    if len(part) > (max_bytes + 2) // 3 * 4 or not _B64URL.match(part) or len(part) % 4 == 1:
        raise malformed()
    try:
        decoded = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise malformed() from None
    # Only the canonical encoding (RFC 7515 §2, no stray bits in the last character).
    if base64.urlsafe_b64encode(decoded).rstrip(b"=").decode("ascii") != part:
        raise malformed()
    return decoded


class _Duplicate(ValueError):
    pass


class _LoneSurrogate(ValueError):
    pass


def _check_text(value: Any) -> None:
    """Raises :class:`_LoneSurrogate` if ``value`` is, or a list in it holds, a string with an
    unpaired surrogate. Objects inside are checked by their own :func:`_no_duplicates` call."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise _LoneSurrogate()
        elif isinstance(item, list):
            pending.extend(item)


def _no_duplicates(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    result: Dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise _Duplicate(name)
        _check_text(name)
        _check_text(value)
        result[name] = value
    return result


def _strict_json(decoded: bytes) -> Dict[str, Any]:
    """A JSON object in UTF-8 whose members each appear once. A string with an unpaired
    surrogate escape (``"\\ud800"``) is no Unicode text: it is malformed, as the Rust twin's
    parser says, rather than left to raise ``UnicodeEncodeError`` (a 500) wherever it is next
    encoded: the ``kid``'s length check, or the application's use of a claim. Every string is
    checked, the members the Rust twin skips unread too, since :class:`AccessToken` hands them
    all to the application."""
    try:
        value = json.loads(decoded.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise malformed() from None
    if not isinstance(value, dict):
        raise malformed()
    return value


def split(token: str, expect: Expectations) -> Tuple[str, str, str]:
    """``(header.payload, payload, signature)`` of a compact JWS of sane size."""
    if len(token) > expect.max_token_bytes or not token.isascii():
        raise malformed()
    signing_input, dot, signature = token.rpartition(".")
    if not dot:
        raise malformed()
    header, dot, payload = signing_input.partition(".")
    if not dot or not header or not payload or "." in payload:
        raise malformed()
    if not signature:
        # An unsecured JWS (``alg: none``) has an empty signature.
        raise forbidden_header()
    return signing_input, payload, signature


def header(signing_input: str) -> Tuple[str, str]:
    """The algorithm and key id of an acceptable header."""
    encoded = signing_input.split(".", 1)[0]
    fields = _strict_json(_decode(encoded, MAX_HEADER_BYTES))
    if set(fields) - {"alg", "typ", "kid"}:
        # Members naming a key elsewhere (jku, x5u, jwk, x5c), crit, JWE's zip and enc, cty,
        # and anything unregistered: whatever the value, the issuer never writes them.
        raise forbidden_header()
    if any(not isinstance(v, str) for v in fields.values()):
        raise malformed()
    alg = fields.get("alg")
    if alg is None:
        raise malformed()
    if alg.lower() == "none" or alg.startswith("HS"):
        raise forbidden_header()
    typ = fields.get("typ")
    # RFC 9068 §4: ``at+jwt``, or the full media type; media types compare case-insensitively.
    if typ is None or typ.lower() not in ("at+jwt", "application/at+jwt"):
        raise refused("wrong_type", "the token is not an access token")
    kid = fields.get("kid")
    if not kid or len(kid.encode("utf-8")) > MAX_KID_BYTES:
        raise unknown_key()
    return alg, kid


def verify(
    token: str, keys: Mapping[str, VerifyKey], expect: Expectations, now: int
) -> AccessToken:
    """Verifies ``token`` against ``keys``: header, key, signature, claims. Raises
    :class:`UnknownKey` for a ``kid`` the key set lacks, :class:`InvalidToken` otherwise."""
    signing_input, payload, signature = split(token, expect)
    alg, kid = header(signing_input)
    key = keys.get(kid)
    if key is None:
        raise UnknownKey(kid)
    # The key decides the algorithm; a header that claims another is refused, never obeyed.
    if alg != key.algorithm:
        raise refused("wrong_algorithm", "the token's algorithm does not match its key")
    try:
        raw_signature = _decode(signature, MAX_SIGNATURE_BYTES)
    except InvalidToken:
        raise refused("bad_signature", "the token's signature is invalid") from None
    if not key.verify(signing_input.encode("ascii"), raw_signature):
        raise refused("bad_signature", "the token's signature is invalid")
    claims = _strict_json(_decode(payload, expect.max_token_bytes))
    return check_claims(claims, expect, now)


def _missing(name: str) -> InvalidToken:
    return refused("missing_claim", f"the token lacks the claim '{name}'")


def _string(claims: Dict[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str):
        raise _missing(name)
    return value


def _integer(claims: Dict[str, Any], name: str) -> Optional[int]:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _missing(name)
    return value


def check_claims(claims: Dict[str, Any], expect: Expectations, now: int) -> AccessToken:
    if _string(claims, "iss") != expect.issuer:
        raise refused("wrong_issuer", "the token was issued by another issuer")
    exp = _integer(claims, "exp")
    if exp is None:
        raise _missing("exp")
    if now >= exp + expect.leeway:
        raise refused("expired", "the token has expired")
    nbf = _integer(claims, "nbf")
    if nbf is not None and nbf > now + expect.leeway:
        raise refused("not_yet_valid", "the token is not valid yet")
    aud = claims.get("aud")
    if isinstance(aud, str):
        audiences = [aud]
    elif isinstance(aud, list) and all(isinstance(a, str) for a in aud):
        audiences = aud
    else:
        raise _missing("aud")
    if expect.audience not in audiences:
        raise refused("wrong_audience", "the token is for another audience")
    iat = _integer(claims, "iat")
    if iat is None:
        raise _missing("iat")
    # A token issued in the future: the issuer's clock is never further ahead than the leeway.
    if iat > now + expect.leeway:
        raise refused("not_yet_valid", "the token is not valid yet")
    for name in ("sub", "client_id", "jti"):
        _string(claims, name)
    for name in ("scope", "sid"):
        if name in claims and not isinstance(claims[name], str):
            raise _missing(name)
    roles = claims.get("roles")
    if roles is not None and not (
        isinstance(roles, list) and all(isinstance(r, str) for r in roles)
    ):
        raise _missing("roles")
    actors = actor_chain(claims.get("act"))
    if actors is None:
        raise refused("malformed", "the token's act claim is malformed")
    return AccessToken(claims, actors)
