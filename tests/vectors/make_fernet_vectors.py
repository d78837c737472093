#!/usr/bin/env python3
"""Writes fernet_vectors.json: tokens made by Python's `cryptography` Fernet,
which the Rust keyring must open (tests/crypto_interop.rs).

Covers standard keys, legacy passphrase keys (Fernet key = URL-safe base64 of
SHA-256(passphrase)), legacy-wrapped tokens (URL-safe base64 of a token),
key rotation, and tokens that the configured keys must *not* open.

Run: python3 tests/vectors/make_fernet_vectors.py > tests/vectors/fernet_vectors.json
These keys and passwords are test data, not secrets.
"""
import base64
import hashlib
import json

# A fixed, past issue time: Fernet rejects tokens from the future, and CI
# clocks may be behind the machine that made these vectors.
ISSUED_AT = 1_600_000_000

from cryptography.fernet import Fernet


def passphrase_key(passphrase: str) -> bytes:
    return base64.urlsafe_b64encode(hashlib.sha256(passphrase.encode()).digest())


def main() -> None:
    std_a = Fernet.generate_key()
    std_b = Fernet.generate_key()
    phrase = "correct horse battery staple"
    phrase_key = passphrase_key(phrase)
    plaintexts = ["S3cret", "pä;ss \"quoted\" ✓", "a:b", "x" * 200, " spaces kept "]

    cases = []

    def add(keys, fernet_key, plaintext, form, note):
        token = Fernet(fernet_key).encrypt_at_time(plaintext.encode(), ISSUED_AT)
        if form == "legacy":
            token = base64.urlsafe_b64encode(token)
        cases.append({
            "keys": keys,
            "token": token.decode(),
            "plaintext": plaintext,
            "form": form,
            "note": note,
        })

    for p in plaintexts:
        add([std_a.decode()], std_a, p, "standard", "standard key")
        add([phrase], phrase_key, p, "standard", "legacy passphrase key")
    add([std_a.decode()], std_a, "S3cret", "legacy", "legacy token, standard key")
    add([phrase], phrase_key, "S3cret", "legacy", "legacy token, passphrase key")
    add([std_b.decode(), std_a.decode()], std_a, "rotated", "standard", "second key opens")
    add([std_b.decode(), phrase], phrase_key, "rotated", "legacy", "second key (passphrase) opens a legacy token")
    # Unpadded legacy wrapping, as some copies of the old tool wrote it.
    token = base64.urlsafe_b64encode(Fernet(std_a).encrypt_at_time(b"unpadded", ISSUED_AT)).rstrip(b"=")
    cases.append({"keys": [std_a.decode()], "token": token.decode(), "plaintext": "unpadded",
                  "form": "legacy", "note": "legacy token without padding"})

    wrong = [
        {"keys": [std_b.decode()], "token": Fernet(std_a).encrypt_at_time(b"nope", ISSUED_AT).decode(), "note": "other standard key"},
        {"keys": [phrase + "!"], "token": Fernet(phrase_key).encrypt_at_time(b"nope", ISSUED_AT).decode(), "note": "other passphrase"},
        {"keys": [std_a.decode()], "token": "gAAAAAB" + "A" * 90, "note": "garbage"},
    ]
    print(json.dumps({
        "passphrase_keys": [{"passphrase": phrase, "fernet_key": phrase_key.decode()}],
        "cases": cases,
        "wrong_key": wrong,
    }, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
