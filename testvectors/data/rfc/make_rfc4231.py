#!/usr/bin/env python3
"""Writes rfc4231.json from the RFC 4231 section 4 test cases.

Test cases 1-4, 6 and 7 are read from the transcriptions of RFC 4231 shipped in the
cryptography_vectors wheel (HMAC/rfc-4231-sha{256,384,512}.txt); that transcription leaves
out test case 5 (the 128-bit truncated output), so its values are written out below,
transcribed from RFC 4231 section 4.6.

Usage: make_rfc4231.py <cryptography_vectors package dir> > rfc4231.json
"""
import json
import os
import sys

# RFC 4231 section 4.6 (test case 5): key = 0x0c * 20, data = "Test With Truncation",
# output truncated to 128 bits.
CASE5 = {
    "sha256": "a3b6167473100ee06e0c796c2955552b",
    "sha384": "3abf34c3503b2a23a46efc619baef897",
    "sha512": "415fad6271580a531d4179bc891d87a6",
}
SECTIONS = {1: "4.2", 2: "4.3", 3: "4.4", 4: "4.5", 5: "4.6", 6: "4.7", 7: "4.8"}


def parse(path):
    cases, cur = [], {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            k, _, v = line.partition(" = ")
            if k == "Len" and cur:
                cases.append(cur)
                cur = {}
            cur[k] = v
    cases.append(cur)
    return cases


def main():
    out = {"source": "RFC 4231, Identifiers and Test Vectors for HMAC-SHA-224, HMAC-SHA-256, HMAC-SHA-384, and HMAC-SHA-512 (December 2005)", "cases": []}
    for hash_name in ("sha256", "sha384", "sha512"):
        parsed = parse(os.path.join(sys.argv[1], "HMAC", f"rfc-4231-{hash_name}.txt"))
        assert len(parsed) == 6, hash_name
        numbers = [1, 2, 3, 4, 6, 7]
        for n, c in zip(numbers, parsed):
            out["cases"].append({"test_case": n, "section": SECTIONS[n], "hash": hash_name,
                                 "key": c["Key"], "data": c["Msg"], "mac": c["MD"]})
        out["cases"].append({"test_case": 5, "section": SECTIONS[5], "hash": hash_name,
                             "key": "0c" * 20, "data": b"Test With Truncation".hex(),
                             "mac": CASE5[hash_name], "truncated_bits": 128})
    out["cases"].sort(key=lambda c: (c["hash"], c["test_case"]))
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
