"""Verification against the live issuer: its real tokens pass, and tokens wrong in one respect
are refused for that respect, with the RFC 6750 answer."""

from __future__ import annotations

import hashlib
import hmac
import io
import threading
import time
import uuid
from pathlib import Path

from typing import Any

import jwt
import pytest
import requests
import urllib3
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from requests.adapters import HTTPAdapter

from conftest import (
    AUDIENCE,
    ISSUER,
    Issuer,
    SigningKey,
    claims,
    encode_segment,
    env,
    eventually,
    thumbprint,
)
from latchkey_verify import InvalidToken, SetupError, Verifier, bearer_token


def refusal(verifier: Verifier, token: str) -> InvalidToken:
    with pytest.raises(InvalidToken) as refused:
        verifier.verify(token)
    return refused.value


def assert_invalid_token(error: InvalidToken, reason: str) -> None:
    assert (error.status, error.error, error.reason) == (401, "invalid_token", reason), repr(error)
    assert error.www_authenticate() == (
        f'Bearer error="invalid_token", error_description="{error.description}"'
    )


def test_a_users_access_token_verifies_and_exposes_its_claims(verifier: Verifier, issuer: Issuer) -> None:
    token = verifier.verify(issuer.user_token())
    assert token.subject == env("TEST_LATCHKEY_USER")
    assert token["sub"] == token.subject
    assert token.client_id == env("TEST_LATCHKEY_PUBLIC_CLIENT")
    assert token.is_user and token.roles == ("user",)
    assert set(token.scopes) == {"read", "write"}
    assert AUDIENCE in token.audience
    assert token.session_id is not None
    assert token.actors == () and token.actor is None and token.act is None
    assert token.expires_at > time.time() > token.issued_at - 5


def test_a_clients_own_token_verifies_as_not_a_users(verifier: Verifier, issuer: Issuer) -> None:
    token = verifier.verify(issuer.client_token())
    assert token.subject == env("TEST_LATCHKEY_FEED_CLIENT_ID")
    assert not token.is_user and token.roles == ()


def test_a_token_for_another_audience_is_refused(issuer: Issuer) -> None:
    with Verifier(ISSUER, "billing") as other:
        assert_invalid_token(refusal(other, issuer.user_token()), "wrong_audience")


def test_a_token_of_another_issuer_is_refused_though_signed_with_the_right_key(
    verifier: Verifier, signing_key: SigningKey
) -> None:
    token = signing_key.sign(claims(iss="https://elsewhere.example"))
    assert_invalid_token(refusal(verifier, token), "wrong_issuer")


def test_a_verifier_refuses_to_start_when_the_metadata_names_another_issuer() -> None:
    look_alike = ISSUER.replace("127.0.0.1", "localhost")
    with pytest.raises(SetupError, match="names the issuer"):
        Verifier(look_alike, AUDIENCE)


def test_a_verifier_refuses_to_start_when_the_issuer_is_unreachable() -> None:
    with pytest.raises(SetupError, match="cannot reach"):
        Verifier("http://127.0.0.1:9", AUDIENCE, timeout=2)


class Stalled(HTTPAdapter):
    """An issuer whose key set starts to arrive and never finishes, until released."""

    def __init__(self) -> None:
        super().__init__()
        self.released = threading.Event()

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        if not str(request.url).endswith("jwks.json"):
            return super().send(request, *args, **kwargs)
        released = self.released

        class Trickle(io.RawIOBase):
            def readable(self) -> bool:
                return True

            def readinto(self, buffer: Any) -> int:
                released.wait()
                return 0

        raw = urllib3.HTTPResponse(
            body=io.BufferedReader(Trickle()),
            status=200,
            headers={"Content-Type": "application/json"},
            preload_content=False,
        )
        return self.build_response(request, raw)


def test_an_issuer_that_never_finishes_an_answer_fails_the_constructor_at_its_setup_timeout() -> None:
    session, stalled = requests.Session(), Stalled()
    session.mount("http://", stalled)
    started = time.monotonic()
    try:
        with pytest.raises(SetupError, match="not ready within 0.5 s"):
            Verifier(ISSUER, AUDIENCE, setup_timeout=0.5, session=session)
        assert time.monotonic() - started < 5, "the constructor returned at its deadline"
    finally:
        stalled.released.set()


def test_a_setup_timeout_that_is_not_a_positive_finite_number_is_refused() -> None:
    for setup_timeout in (0, -1, float("inf"), float("nan")):
        with pytest.raises(SetupError, match="setup timeout must be positive and finite"):
            Verifier(ISSUER, AUDIENCE, setup_timeout=setup_timeout)


def test_an_expired_token_is_refused_and_one_within_the_leeway_is_not(
    verifier: Verifier, signing_key: SigningKey
) -> None:
    now = int(time.time())
    expired = signing_key.sign(claims(exp=now - 60, iat=now - 960, nbf=now - 960))
    assert_invalid_token(refusal(verifier, expired), "expired")
    assert verifier.verify(signing_key.sign(claims(exp=now - 2)))["exp"] == now - 2


def test_a_token_not_valid_yet_is_refused_and_one_within_the_leeway_is_not(
    verifier: Verifier, signing_key: SigningKey
) -> None:
    now = int(time.time())
    assert_invalid_token(refusal(verifier, signing_key.sign(claims(nbf=now + 60))), "not_yet_valid")
    assert_invalid_token(
        refusal(verifier, signing_key.sign(claims(iat=now + 60, nbf=None))), "not_yet_valid"
    )
    assert verifier.verify(signing_key.sign(claims(nbf=now + 2)))["nbf"] == now + 2


def test_a_token_without_the_access_token_type_is_refused(
    verifier: Verifier, issuer: Issuer, signing_key: SigningKey
) -> None:
    assert_invalid_token(refusal(verifier, signing_key.sign(claims(), typ="JWT")), "wrong_type")
    plain = jwt.encode(claims(), signing_key.key, algorithm="RS256", headers={"kid": signing_key.kid})
    assert_invalid_token(refusal(verifier, plain), "wrong_type")
    refresh = str(issuer.login(env("TEST_LATCHKEY_USER"), env("TEST_LATCHKEY_PASSWORD"))["refresh_token"])
    assert_invalid_token(refusal(verifier, refresh), "wrong_type")


def test_an_unsigned_token_with_alg_none_is_refused(verifier: Verifier, signing_key: SigningKey) -> None:
    header = encode_segment({"alg": "none", "typ": "at+jwt", "kid": signing_key.kid})
    body = encode_segment(claims())
    assert_invalid_token(refusal(verifier, f"{header}.{body}."), "forbidden_header")
    assert_invalid_token(refusal(verifier, f"{header}.{body}.c2ln"), "forbidden_header")


def test_a_token_signed_with_hs256_and_the_public_key_as_secret_is_refused(
    verifier: Verifier, signing_key: SigningKey
) -> None:
    header = encode_segment({"alg": "HS256", "typ": "at+jwt", "kid": signing_key.kid})
    signing_input = f"{header}.{encode_segment(claims())}"
    mac = hmac.new(signing_key.public_pem(), signing_input.encode(), hashlib.sha256).digest()
    assert_invalid_token(refusal(verifier, f"{signing_input}.{encode_segment(mac)}"), "forbidden_header")


def test_the_key_decides_the_algorithm_not_the_header(verifier: Verifier, signing_key: SigningKey) -> None:
    token = jwt.encode(
        claims(), signing_key.key, algorithm="PS256", headers={"kid": signing_key.kid, "typ": "at+jwt"}
    )
    assert_invalid_token(refusal(verifier, token), "wrong_algorithm")


def test_a_header_naming_its_own_key_or_any_other_member_is_refused(
    verifier: Verifier, signing_key: SigningKey
) -> None:
    for member in ({"jku": "https://evil.example/jwks"}, {"x5u": "https://evil.example"}, {"cty": "JWT"}):
        token = signing_key.sign(claims(), **member)
        assert_invalid_token(refusal(verifier, token), "forbidden_header")


def test_a_tampered_token_and_malformed_ones_are_refused(
    verifier: Verifier, issuer: Issuer
) -> None:
    header, payload, signature = issuer.user_token().split(".")
    other = encode_segment(dict(claims(), sub="mallory"))
    assert_invalid_token(refusal(verifier, f"{header}.{other}.{signature}"), "bad_signature")
    for token in ("", "abc", "a.b", "a.b.c.d", "!!.??.**", "x" * 9000):
        assert_invalid_token(refusal(verifier, token), "malformed")


#: A header whose ``kid`` is a lone UTF-16 surrogate (JSON ``"\ud800"``), which no UTF-8 holds.
LONE_SURROGATE_KID = "eyJhbGciOiJSUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6Ilx1ZDgwMCJ9.e30.AAAA"


def test_a_lone_surrogate_in_the_header_or_a_claim_is_malformed_not_a_crash(
    verifier: Verifier, signing_key: SigningKey
) -> None:
    assert_invalid_token(refusal(verifier, LONE_SURROGATE_KID), "malformed")
    with pytest.raises(InvalidToken) as cached:
        verifier.verify_cached(LONE_SURROGATE_KID)
    assert_invalid_token(cached.value, "malformed")
    # Signed by the issuer's key, so only the surrogate is wrong: the Rust twin's JSON parser
    # refuses unpaired surrogates anywhere, and so must this one.
    for changes in ({"sub": "\ud800"}, {"jti": "a\udfffb"}, {"scope": "read \udc00"}):
        assert_invalid_token(refusal(verifier, signing_key.sign(claims(**changes))), "malformed")
    surrogate_name = signing_key.sign(dict(claims(), **{"\ud800": "x"}))
    assert_invalid_token(refusal(verifier, surrogate_name), "malformed")


def test_a_duplicated_claim_is_malformed(verifier: Verifier, signing_key: SigningKey) -> None:
    header = encode_segment({"alg": "RS256", "typ": "at+jwt", "kid": signing_key.kid})
    # Signed by hand: PyJWT cannot write a duplicated member.
    body = jwt.utils.base64url_encode(
        b'{"iss":"x","iss":"' + ISSUER.encode() + b'","sub":"alice"}'
    ).decode()
    signing_input = f"{header}.{body}".encode()
    signature = jwt.algorithms.RSAAlgorithm(jwt.algorithms.RSAAlgorithm.SHA256).sign(
        signing_input, signing_key.key
    )
    token = f"{header}.{body}.{encode_segment(signature)}"
    assert_invalid_token(refusal(verifier, token), "malformed")


def test_the_act_chain_of_an_exchanged_token_is_exposed(verifier: Verifier, signing_key: SigningKey) -> None:
    act = {"sub": "billing-api", "act": {"sub": "gateway"}}
    token = verifier.verify(signing_key.sign(claims(act=act)))
    assert token.act == act
    assert [a.subject for a in token.actors] == ["billing-api", "gateway"]
    assert token.actor == "billing-api"
    assert token.require_actor("billing-api") is token
    for other in ("gateway", "payments"):
        with pytest.raises(InvalidToken) as refused:
            token.require_actor(other)
        assert (refused.value.status, refused.value.error) == (403, "insufficient_scope")
    with pytest.raises(InvalidToken):
        verifier.verify(signing_key.sign(claims())).require_actor("billing-api")
    bad = signing_key.sign(claims(act={"act": {"sub": "gateway"}}))
    assert refusal(verifier, bad).reason == "malformed"


def test_required_scopes_and_roles_answer_403_insufficient_scope(
    verifier: Verifier, issuer: Issuer
) -> None:
    token = issuer.user_token()
    assert verifier.verify(token, scopes=("read",), roles=("user",)).subject
    missing_scope = refusal_with(verifier, token, scopes=("orders:write",))
    assert (missing_scope.status, missing_scope.error, missing_scope.scope) == (
        403,
        "insufficient_scope",
        "orders:write",
    )
    assert 'scope="orders:write"' in (missing_scope.www_authenticate() or "")
    missing_role = refusal_with(verifier, token, roles=("admin",))
    assert (missing_role.status, missing_role.error, missing_role.reason) == (
        403,
        "insufficient_scope",
        "insufficient_role",
    )
    assert "admin" in missing_role.description
    claims_ = verifier.verify(token)
    assert claims_.require_scope("read").require_role("user") is claims_
    with pytest.raises(InvalidToken):
        claims_.require_role("admin")


def refusal_with(verifier: Verifier, token: str, **required: tuple[str, ...]) -> InvalidToken:
    with pytest.raises(InvalidToken) as refused:
        verifier.verify(token, **required)
    return refused.value


def test_the_authorization_header_is_read_per_rfc_6750() -> None:
    assert bearer_token("Bearer abc.def.ghi") == "abc.def.ghi"
    assert bearer_token("bearer  abc ") == "abc"
    for absent in (None, "", "Basic dXNlcjpwYXNz"):
        with pytest.raises(InvalidToken) as missing:
            bearer_token(absent)
        assert (missing.value.status, missing.value.error) == (401, None)
        assert missing.value.www_authenticate() == "Bearer"
        assert missing.value.www_authenticate("orders") == 'Bearer realm="orders"'
    for malformed in ("Bearer", "Bearer a b", 'Bearer a"b'):
        with pytest.raises(InvalidToken) as bad:
            bearer_token(malformed)
        assert (bad.value.status, bad.value.error) == (400, "invalid_request")


# ---- the key set ----------------------------------------------------------------------------


def stranger_key() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key, thumbprint(key.public_key())


def sign_with(key: rsa.RSAPrivateKey, kid: str) -> str:
    return jwt.encode(claims(), key, algorithm="RS256", headers={"kid": kid, "typ": "at+jwt"})


def test_an_unknown_kid_triggers_one_refetch_and_is_refused() -> None:
    key, kid = stranger_key()
    with Verifier(ISSUER, AUDIENCE) as verifier:
        before = verifier.status().jwks_fetches
        assert_invalid_token(refusal(verifier, sign_with(key, kid)), "unknown_key")
        assert verifier.status().jwks_fetches == before + 1
        assert_invalid_token(refusal(verifier, sign_with(key, kid)), "unknown_key")
        assert verifier.status().jwks_fetches == before + 1, "within the interval: no refetch"


def test_a_flood_of_unknown_kids_costs_the_issuer_one_fetch() -> None:
    key, _ = stranger_key()
    tokens = [sign_with(key, uuid.uuid4().hex) for _ in range(200)]
    with Verifier(ISSUER, AUDIENCE) as verifier:
        before = verifier.status().jwks_fetches
        reasons: list[str] = []
        lock = threading.Lock()

        def attack(batch: list[str]) -> None:
            for token in batch:
                try:
                    verifier.verify(token)
                except InvalidToken as error:
                    with lock:
                        reasons.append(error.reason)

        threads = [threading.Thread(target=attack, args=(tokens[i::16],)) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert reasons == ["unknown_key"] * len(tokens)
        assert verifier.status().jwks_fetches == before + 1


def test_a_key_the_issuer_publishes_after_start_is_fetched_on_its_first_token(issuer: Issuer) -> None:
    with Verifier(ISSUER, AUDIENCE) as verifier:
        before = verifier.status().jwks_fetches
        key, kid = stranger_key()
        keys_dir = Path(env("TEST_LATCHKEY_KEYS_DIR"))
        path = keys_dir / f"key-{int(time.time())}-{kid[:8]}.pem"
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        path.chmod(0o600)
        eventually(lambda: kid in issuer.published_kids(), 15, "publishing the new key")
        token = verifier.verify(sign_with(key, kid))
        assert token.subject == "alice"
        assert verifier.status().jwks_fetches == before + 1
