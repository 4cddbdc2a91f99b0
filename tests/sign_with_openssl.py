#!/usr/bin/env python3
"""Sign a dcledger entry with nothing but OpenSSL and the Python standard library.

Usage: sign_with_openssl.py KEY.pem ORIGIN KIND SEQ TS BODY.json > envelope.json

This is the whole protocol an operator needs (PROTOCOL sections 2-3): build the entry,
canonicalise it (JCS; for integer-only JSON with ASCII keys that is sorted keys and no
whitespace), sign "dcledger/entry/v1\\n" + ORIGIN + "\\n" + JCS(entry) with Ed25519, and
send {"entry": ..., "sig": <hex>}. ORIGIN is the ledger's name, the first line of its
checkpoint (GET /v1/checkpoint): the signature is valid in that ledger and no other.
The integration tests run it to prove that dcledger accepts what an independent signer
produces.
"""
import json
import subprocess
import sys
import tempfile


def canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def main():
    key, origin, kind, seq, ts, body_path = sys.argv[1:7]
    der = subprocess.run(
        ["openssl", "pkey", "-in", key, "-pubout", "-outform", "DER"],
        check=True, capture_output=True,
    ).stdout
    with open(body_path, encoding="utf-8") as f:
        body = json.load(f)
    entry = {"v": 1, "kind": kind, "signer": der[-32:].hex(), "seq": int(seq), "ts": ts, "body": body}
    with tempfile.NamedTemporaryFile() as msg:
        msg.write(b"dcledger/entry/v1\n" + origin.encode("ascii") + b"\n" + canonical(entry))
        msg.flush()
        sig = subprocess.run(
            ["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", key, "-in", msg.name],
            check=True, capture_output=True,
        ).stdout
    print(json.dumps({"entry": entry, "sig": sig.hex()}, separators=(",", ":")))


if __name__ == "__main__":
    main()
