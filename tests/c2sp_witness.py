#!/usr/bin/env python3
"""An independent C2SP witness and cosignature checker, written from the C2SP documents
(signed-note, tlog-checkpoint, tlog-cosignature, tlog-witness) and RFC 9162 alone, in
standard-library Python plus the `cryptography` package for Ed25519. The integration
tests run it against dcledger: a ledger asks it for cosignatures like any witness, and
it checks the cosignatures dcledger's own witness makes.

Usage:
  c2sp_witness.py serve NAME SEED_HEX LOG_VKEY   serve add-checkpoint on a free port of
                                                127.0.0.1; prints "listening on
                                                http://HOST:PORT" and "verifier key: VKEY"
  c2sp_witness.py check NOTE_FILE LOG_VKEY WITNESS_VKEY
                                                exit 0 if the note carries a valid log
                                                signature and a valid cosignature/v1 of the
                                                witness; print its timestamp
"""
import base64
import hashlib
import http.server
import struct
import sys
import threading
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

DASH = "\u2014 "


def key_id(name, alg, public):
    return hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public).digest()[:4]


def parse_vkey(vkey, alg):
    name, hex_id, b64 = vkey.split("+", 2)
    raw = base64.b64decode(b64)
    assert raw[0] == alg, f"signature type {raw[0]} is not {alg}"
    assert key_id(name, alg, raw[1:]) == bytes.fromhex(hex_id), "key id mismatch"
    return name, Ed25519PublicKey.from_public_bytes(raw[1:]), raw[1:]


def split_note(note):
    text, _, sigs = note.rpartition("\n\n")
    assert sigs.endswith("\n")
    return text + "\n", sigs[:-1].split("\n")


def signatures(lines, name, kid):
    """The signature bytes (after the key id) of lines by `name` with key id `kid`."""
    for line in lines:
        assert line.startswith(DASH)
        who, b64 = line[len(DASH):].split(" ")
        raw = base64.b64decode(b64)
        if who == name and raw[:4] == kid:
            yield raw[4:]


def verify_log(note, log_vkey):
    """The (origin, size, root) of a note signed by the log; raises if unsigned."""
    name, key, public = parse_vkey(log_vkey, 0x01)
    text, lines = split_note(note)
    found = False
    for sig in signatures(lines, name, key_id(name, 0x01, public)):
        key.verify(sig, text.encode())
        found = True
    if not found:
        raise InvalidSignature("no signature by the log")
    origin, size, root = text[:-1].split("\n")[:3]
    assert origin == name
    return origin, int(size), base64.b64decode(root), text


# RFC 9162 section 2.1.4.2: verifying a consistency proof.
def node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_consistency(first, second, first_hash, second_hash, proof):
    if first == second:
        return not proof and first_hash == second_hash
    if first == 0 or first > second or not proof:
        return False
    if first & (first - 1) == 0:  # a power of two: the old root starts the path
        proof = [first_hash] + proof
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node(c, fr)
            sr = node(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_hash and sr == second_hash


def cosignature_message(text, timestamp):
    return f"cosignature/v1\ntime {timestamp}\n".encode() + text.encode()


def serve(name, seed_hex, log_vkey):
    private = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex))
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    kid = key_id(name, 0x04, public)
    vkey = f"{name}+{kid.hex()}+{base64.b64encode(bytes([0x04]) + public).decode()}"
    lock = threading.Lock()
    latest = {}  # origin -> (size, root), kept in memory: this witness is for tests

    class Handler(http.server.BaseHTTPRequestHandler):
        def answer(self, status, body, ctype="text/plain; charset=utf-8"):
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            if self.path != "/add-checkpoint":
                return self.answer(404, "no such endpoint\n")
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            head, _, note = body.partition("\n\n")
            lines = head.split("\n")
            if not lines[0].startswith("old "):
                return self.answer(400, "no old size\n")
            old = int(lines[0][4:])
            proof = [base64.b64decode(l) for l in lines[1:]]
            try:
                origin, size, root, text = verify_log(note, log_vkey)
            except (InvalidSignature, AssertionError, ValueError):
                return self.answer(403, "not signed by the log\n")
            if old > size:
                return self.answer(400, "old size beyond the checkpoint\n")
            with lock:
                last_size, last_root = latest.get(origin, (0, None))
                if old != last_size:
                    return self.answer(409, f"{last_size}\n", "text/x.tlog.size")
                if last_root is None:
                    if proof:
                        return self.answer(422, "a proof from size 0 must be empty\n")
                elif last_size == size and last_root != root:
                    return self.answer(409, f"{last_size}\n", "text/x.tlog.size")
                elif not verify_consistency(last_size, size, last_root, root, proof):
                    return self.answer(422, "inconsistent\n")
                latest[origin] = (size, root)
            timestamp = int(time.time())
            sig = private.sign(cosignature_message(text, timestamp))
            line = DASH + name + " " + base64.b64encode(kid + struct.pack(">Q", timestamp) + sig).decode()
            return self.answer(200, line + "\n")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    print(f"verifier key: {vkey}", flush=True)
    server.serve_forever()


def check(note_file, log_vkey, witness_vkey):
    with open(note_file, encoding="utf-8") as f:
        note = f.read()
    _, _, _, text = verify_log(note, log_vkey)
    name, key, public = parse_vkey(witness_vkey, 0x04)
    _, lines = split_note(note)
    for raw in signatures(lines, name, key_id(name, 0x04, public)):
        timestamp = struct.unpack(">Q", raw[:8])[0]
        key.verify(raw[8:], cosignature_message(text, timestamp))
        print(timestamp)
        return 0
    print(f"no cosignature by {name}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(*sys.argv[2:5])
    else:
        sys.exit(check(*sys.argv[2:5]))
