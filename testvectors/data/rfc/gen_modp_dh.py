#!/usr/bin/env python3
"""Generates modp_dh.json: Diffie-Hellman known answers for the RFC 3526 2048- and 3072-bit
MODP groups, computed with Python's built-in pow() -- an implementation independent of
ike::crypto -- from the primes in rfc3526-modp.txt.

Private exponents are deterministic (SHA-256 in counter mode over a label), so re-running
this script reproduces the file byte for byte. For each group: one pair of 256-bit exponents
(the size a responder typically draws) and one pair as long as the prime (reduced below p-1).

Usage (from this folder): python3 gen_modp_dh.py > modp_dh.json
"""
import hashlib
import json
import re
import sys


def prime(bits):
    text = open("rfc3526-modp.txt").read()
    section = text.split(f"{bits}-bit MODP Group")[1].split("The generator is")[0]
    return int("".join(re.findall(r"\b[0-9A-F]{8}\b", section)), 16)


def expand(label, n):
    out = b""
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{label}/{counter}".encode()).digest()
        counter += 1
    return out[:n]


def main():
    cases = []
    for bits, group in ((2048, 14), (3072, 15)):
        p = prime(bits)
        plen = bits // 8
        for exp_len in (32, plen):
            a = int.from_bytes(expand(f"baton modp {bits} {exp_len} a", exp_len), "big") % (p - 2) + 2
            b = int.from_bytes(expand(f"baton modp {bits} {exp_len} b", exp_len), "big") % (p - 2) + 2
            ga, gb = pow(2, a, p), pow(2, b, p)
            shared = pow(gb, a, p)
            assert shared == pow(ga, b, p)
            cases.append({
                "group": group,
                "exponent_octets": exp_len,
                "a": a.to_bytes(exp_len, "big").hex(),
                "b": b.to_bytes(exp_len, "big").hex(),
                "ga": ga.to_bytes(plen, "big").hex(),
                "gb": gb.to_bytes(plen, "big").hex(),
                "shared": shared.to_bytes(plen, "big").hex(),
            })
    json.dump({"generator": "gen_modp_dh.py (Python pow), primes from rfc3526-modp.txt",
               "comment": "Public values and shared secrets are left-padded to the prime length (RFC 7296 section 3.4, RFC 3526).",
               "cases": cases}, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
