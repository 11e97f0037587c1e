"""The conformance vectors (conformance/vectors/), which the Rust and Node verifiers run too."""

from __future__ import annotations

import time

import pytest

from auth_verifier import VerifyError
from auth_verifier.state import VerifierState

from .conftest import load

TOKENS = load("vectors/tokens.json")
SEQUENCES = load("vectors/sequences.json")


def verdict(check) -> str:
    try:
        check()
    except VerifyError as error:
        return error.reason
    return "OK"


@pytest.mark.parametrize("case", TOKENS["cases"], ids=[case["name"] for case in TOKENS["cases"]])
def test_every_token_vector_gets_its_verdict(case):
    state = VerifierState(audience=TOKENS["audience"], issuer=TOKENS["issuer"], leeway=TOKENS["leeway_seconds"])
    import json

    state.replace_keys(json.dumps(TOKENS["jwks"]))
    got = {}

    def check():
        got["principal"] = state.check(case["token"], TOKENS["now"])

    assert verdict(check) == case["expect"]
    if "principal" in case:
        principal = got["principal"]
        assert principal.user_id == case["principal"]["user_id"]
        assert principal.session_id == case["principal"]["session_id"]
        assert list(principal.roles) == case["principal"]["roles"]
        assert principal.kind == case["principal"]["kind"]
        assert list(principal.actors) == case["principal"]["actors"]
    # A second check of the same text (from the verified-token cache) gives the same verdict.
    assert verdict(check) == case["expect"]


def apply(state: VerifierState, step: dict) -> None:
    import json

    if "keys_changed" in step:
        state.replace_keys(json.dumps(step["keys_changed"]))
    elif "signing_key_revoked" in step:
        state.revoke_key(step["signing_key_revoked"])
    elif "session_revoked" in step:
        state.revoke_session(step["session_revoked"]["session_id"], step["session_revoked"]["tokens_live_until"])
    elif "user_sessions_revoked" in step:
        state.revoke_user(step["user_sessions_revoked"]["user_id"], step["user_sessions_revoked"]["revoked_before"])
    else:
        raise AssertionError(f"unknown step {step}")


@pytest.mark.parametrize("sequence", SEQUENCES["sequences"], ids=[s["name"] for s in SEQUENCES["sequences"]])
def test_every_feed_sequence_gets_its_verdicts(sequence):
    import json

    state = VerifierState(audience=SEQUENCES["audience"], issuer=SEQUENCES["issuer"])
    published = {"jwks": json.dumps(sequence["jwks"])}
    state.replace_keys(published["jwks"])
    for step in sequence.get("snapshot", []):
        apply(state, step)
    for index, step in enumerate(sequence["steps"]):
        if "publish" in step:
            published["jwks"] = json.dumps(step["publish"])
        elif "verify" in step:
            got = verdict(lambda: state.check(step["verify"], int(time.time()), lambda: state.replace_keys(published["jwks"])))
            assert got == step["expect"], f"step {index}"
        else:
            if "keys_changed" in step:
                published["jwks"] = json.dumps(step["keys_changed"])
            apply(state, step)
