"""Sealing is RFC 9180 HPKE (base mode, X25519 / HKDF-SHA256 / AES-256-GCM), checked
against the RFC's published test vector and against the vector docs/privacy.md gives
institutions, so that a system in another language can seal CPR numbers for ingest."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.domain.sealing import INFO, SUITE, InvalidSeal, development_private_key, seal, unseal
from tests.unit import hpke_reference as hpke

# RFC 9180's test vectors (CFRG test-vectors.json, as shipped in cryptography_vectors
# 50.0.2, HPKE/test-vectors.json): mode 0, kem_id 0x0020, kdf_id 0x0001, aead_id 0x0002.
RFC = {
    "info": "4f6465206f6e2061204772656369616e2055726e",
    "ikmE": "2cd7c601cefb3d42a62b04b7a9041494c06c7843818e0ce28a8f704ae7ab20f9",
    "ikmR": "dac33b0e9db1b59dbbea58d59a14e7b5896e9bdf98fad6891e99d1686492b9ee",
    "skRm": "497b4502664cfea5d5af0b39934dac72242a74f8480451e1aee7d6a53320333d",
    "skEm": "179d4b53b6365c45b600c4163b61d95cbc2f4d9e36f1695558dce265ab8bab11",
    "pkRm": "430f4b9859665145a6b1ba274024487bd66f03a2dd577d7753c68d7d7d00c00c",
    "enc": "6c93e09869df3402d7bf231bf540fadd35cd56be14f97178f0954db94b7fc256",
    "shared_secret": "3101c54c3a4f87439eaac080699ed9bbcc726ffe44e860c0424ccb7e3e2ead7b",
    "key": "f50b0609186798729ed0564b36ef2ef8044f1f9d05636874d1f46c819c7a669f",
    "base_nonce": "151d9929e2449747889bc923",
    "pt": "4265617574792069732074727574682c20747275746820626561757479",
    "encryptions": (
        ("436f756e742d30", "e5d84cd531cfb583096e7cfa9641bd3079cf3a91cda813c52deb5f512be9931980a41de125a925cdad859d5b7a"),
        ("436f756e742d31", "2c43aff25343fdbff864506f0818b9d87df84ea01b1a2144d23b4d40c26bf655fdf197fe40297a8aebeed5cc2d"),
    ),
}

# The vector in docs/privacy.md: the RFC's recipient and ephemeral keys, our info string.
DOCS_CPR = "010203-4567"
DOCS_TOKEN = "v2.bJPgmGnfNALXvyMb9UD63TXNVr4U-XF48JVNuUt_wla49vUImAw_WSO1ogpQVJQzMbY9WfewK24sJds"


def _hex(name: str) -> bytes:
    value = RFC[name]
    assert isinstance(value, str)
    return bytes.fromhex(value)


def test_the_reference_derives_the_rfc_keys_and_key_schedule() -> None:
    assert hpke.derive_private_key(_hex("ikmE")) == _hex("skEm")
    assert hpke.derive_private_key(_hex("ikmR")) == _hex("skRm")
    assert hpke.public_bytes(_hex("skRm")) == _hex("pkRm")
    enc, context = hpke.setup_sender(_hex("skEm"), _hex("pkRm"), _hex("info"))
    assert enc == _hex("enc")
    assert context.shared_secret == _hex("shared_secret")
    assert context.key == _hex("key")
    assert context.base_nonce == _hex("base_nonce")


def test_the_reference_reproduces_the_rfc_ciphertexts() -> None:
    context = hpke.setup_recipient(_hex("enc"), _hex("skRm"), _hex("info"))
    for sequence, (aad, ciphertext) in enumerate(RFC["encryptions"]):
        sealed = AESGCM(context.key).encrypt(context.nonce(sequence), _hex("pt"), bytes.fromhex(aad))
        assert sealed.hex() == ciphertext


def test_cryptography_hpke_opens_what_the_reference_seals_and_the_other_way_round() -> None:
    recipient = X25519PrivateKey.from_private_bytes(_hex("skRm"))
    sealed = hpke.seal_single_shot(_hex("skEm"), _hex("pkRm"), _hex("info"), _hex("pt"))
    assert SUITE.decrypt(sealed, recipient, info=_hex("info")) == _hex("pt")
    by_library = SUITE.encrypt(_hex("pt"), recipient.public_key(), info=_hex("info"))
    assert hpke.open_single_shot(by_library, _hex("skRm"), _hex("info")) == _hex("pt")


def test_the_documented_vector_is_what_the_reference_seals_and_ingest_opens() -> None:
    sealed = hpke.seal_single_shot(_hex("skEm"), _hex("pkRm"), INFO, DOCS_CPR.encode())
    assert "v2." + base64.urlsafe_b64encode(sealed).decode().rstrip("=") == DOCS_TOKEN
    assert unseal(DOCS_TOKEN, X25519PrivateKey.from_private_bytes(_hex("skRm"))) == DOCS_CPR


def test_a_seal_round_trips_and_differs_every_time() -> None:
    key = development_private_key()
    first, second = seal(DOCS_CPR, key.public_key()), seal(DOCS_CPR, key.public_key())
    assert first != second
    assert unseal(first, key) == unseal(second, key) == DOCS_CPR


@pytest.mark.parametrize("token", [
    "v1.bJPgmGnfNALXvyMb9UD63TXNVr4U-XF48JVNuUt_wla49vUImAw_WSO1ogpQVJQzMbY9WfewK24sJds",
    "v2.bJPgmGnfNALXvyMb9UD63TXNVr4U",
    "v2.bJPgmGnfNALXvyMb9UD63TXNVr4U-XF48JVNuUt_wla49vUImAw_WSO1ogpQVJQzMbY9WfewK24sJAs",
    "v2.!!!!",
])
def test_a_token_that_is_not_a_valid_seal_is_refused(token: str) -> None:
    with pytest.raises(InvalidSeal):
        unseal(token, X25519PrivateKey.from_private_bytes(_hex("skRm")))


def test_a_seal_for_another_key_is_refused() -> None:
    with pytest.raises(InvalidSeal):
        unseal(seal(DOCS_CPR, X25519PrivateKey.generate().public_key()), development_private_key())
