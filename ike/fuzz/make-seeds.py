#!/usr/bin/env python3
"""Seed corpora for the fuzz targets from the strongSwan captures.

Usage: python3 make-seeds.py OUT_DIR
Writes OUT_DIR/decode_message/* (every captured message) and OUT_DIR/sk_decrypt/*
(mode 0 + every captured message; modes 1, 2 and 3 + every decrypted SK/SKF plaintext,
prefixed with its first inner payload type) -- see fuzz_targets/sk_decrypt.rs.
"""
import glob
import hashlib
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
captures = os.path.join(here, "..", "..", "testvectors", "data", "strongswan")
out = sys.argv[1]
dm = os.path.join(out, "decode_message")
sk = os.path.join(out, "sk_decrypt")
os.makedirs(dm, exist_ok=True)
os.makedirs(sk, exist_ok=True)


def write(d, b):
    with open(os.path.join(d, hashlib.sha1(b).hexdigest()), "wb") as f:
        f.write(b)


for path in sorted(glob.glob(os.path.join(captures, "*", "*.bin"))):
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".decrypted.bin"):
        with open(path.replace(".decrypted.bin", ".bin"), "rb") as f:
            first = f.read()[28]  # the SK/SKF payload's Next Payload
        write(sk, bytes([1, first]) + data)
        write(sk, bytes([2, 40, 7, first]) + data)
        write(sk, bytes([3, first]) + data)
    else:
        write(dm, data)
        write(sk, bytes([0]) + data)
print(len(os.listdir(dm)), "decode_message seeds,", len(os.listdir(sk)), "sk_decrypt seeds")
