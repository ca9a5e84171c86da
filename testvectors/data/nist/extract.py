#!/usr/bin/env python3
"""Extract the IKE-relevant subsets of NIST CAVP vectors from the cryptography_vectors wheel.

Usage: extract.py <path to the unpacked cryptography_vectors/ package dir> <output dir>

Selection (kept in NIST's own .rsp/.fax text format, unmodified record by record):
  * AES-GCM (gcmEncryptExtIV{128,256}.rsp, gcmDecrypt{128,256}.rsp): only the sections with
    [IVlen = 96] and [Taglen = 128], the only GCM shape IKEv2 uses (RFC 5282: ENCR_AES_GCM_16,
    nonce = 4-octet salt | 8-octet IV, 16-octet ICV). 192-bit keys are dropped (not offered).
  * AES-CBC (CBC{GFSbox,KeySbox,VarKey,VarTxt,MMT}{128,256}.rsp): whole files.
  * KAS ECC CDH primitive (KASValidityTest_ECCStaticUnified_NOKC_ZZOnly_{init,resp}.fax):
    only the [EC] (P-256) and [ED] (P-384) parameter-set records.
"""
import os
import sys


def gcm_subset(src, dst):
    """Keep the header comment and the records of [IVlen = 96], [Taglen = 128] sections."""
    out = []
    header = True
    section = {}
    keep = False
    emitted_section = None
    block = []
    with open(src) as f:
        lines = f.read().splitlines()
    for line in lines + [""]:
        if header:
            if line.startswith("#") or not line.strip():
                out.append(line)
                continue
            header = False
        if line.startswith("["):
            k, _, v = line.strip("[]").partition(" = ")
            section[k] = v
            keep = section.get("IVlen") == "96" and section.get("Taglen") == "128"
            continue
        if line.strip():
            block.append(line)
            continue
        if block:
            if keep:
                key = tuple(sorted(section.items()))
                if emitted_section != key:
                    for k in ("Keylen", "IVlen", "PTlen", "AADlen", "Taglen"):
                        out.append(f"[{k} = {section[k]}]")
                    out.append("")
                    emitted_section = key
                out.extend(block)
                out.append("")
            block = []
    with open(dst, "w") as f:
        f.write("\n".join(out).rstrip("\n") + "\n")


def kas_subset(src, dst):
    """Keep the header and the P-256 ([EC]) and P-384 ([ED]) record sections."""
    out = []
    keep = True  # the header lists the parameter sets; keep it whole
    in_records = False
    with open(src) as f:
        for line in f.read().splitlines():
            if line.startswith("[E") and " - SHA" in line:
                in_records = True
                keep = line.startswith("[EC - ") or line.startswith("[ED - ")
            if keep or not in_records:
                out.append(line)
    with open(dst, "w") as f:
        f.write("\n".join(out).rstrip("\n") + "\n")


def main():
    src, dst = sys.argv[1], sys.argv[2]
    gcm = os.path.join(src, "ciphers", "AES", "GCM")
    for name in ("gcmEncryptExtIV128", "gcmEncryptExtIV256", "gcmDecrypt128", "gcmDecrypt256"):
        gcm_subset(os.path.join(gcm, name + ".rsp"), os.path.join(dst, name + "_iv96_tag128.rsp"))
    cbc = os.path.join(src, "ciphers", "AES", "CBC")
    for kind in ("GFSbox", "KeySbox", "VarKey", "VarTxt", "MMT"):
        for bits in ("128", "256"):
            name = f"CBC{kind}{bits}.rsp"
            with open(os.path.join(cbc, name)) as f, open(os.path.join(dst, name), "w") as g:
                g.write(f.read())
    ecdh = os.path.join(src, "asymmetric", "ECDH")
    for role in ("init", "resp"):
        name = f"KASValidityTest_ECCStaticUnified_NOKC_ZZOnly_{role}"
        kas_subset(os.path.join(ecdh, name + ".fax"), os.path.join(dst, name + "_P256_P384.fax"))


if __name__ == "__main__":
    main()
