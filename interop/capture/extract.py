#!/usr/bin/env python3
"""Turns one strongSwan capture (pcap + charon logs at ike=4) into baton test data.

Writes into --out: one file per IKE message (the UDP payload from the IKE header on;
the 4-byte non-ESP marker of port 4500 stripped), a `.decrypted.bin` beside every
encrypted message (the inner payload chain, padding removed), keys.json and SOURCE.md.

It does not trust the logs blindly: every IKE SA's keys are re-derived from the
nonces, SPIs and the logged shared secret (RFC 7296 §2.14, §2.18), compared with what
the initiator and the responder logged, and every SK / SKF payload is decrypted and
its ICV checked (RFC 5282 for AES-GCM, RFC 7634 for ChaCha20-Poly1305, RFC 7296 §3.14
for CBC + HMAC). Child SA keys are derived (RFC 7296 §2.17) and compared with the
logged ones when charon logs them. Any mismatch is a hard error.

Needs the `cryptography` Python package.
"""

import argparse
import datetime
import hashlib
import hmac
import json
import re
import struct
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

EXCHANGES = {34: "IKE_SA_INIT", 35: "IKE_AUTH", 36: "CREATE_CHILD_SA", 37: "INFORMATIONAL"}
PAYLOADS = {33: "SA", 34: "KE", 35: "IDi", 36: "IDr", 37: "CERT", 38: "CERTREQ", 39: "AUTH",
            40: "Ni/Nr", 41: "N", 42: "D", 43: "V", 44: "TSi", 45: "TSr", 46: "SK", 47: "CP",
            48: "EAP", 53: "SKF"}
ENCR = {12: ("ENCR_AES_CBC", None), 20: ("ENCR_AES_GCM_16", 16), 28: ("ENCR_CHACHA20_POLY1305", 16)}
PRF = {5: ("PRF_HMAC_SHA2_256", hashlib.sha256), 6: ("PRF_HMAC_SHA2_384", hashlib.sha384),
       7: ("PRF_HMAC_SHA2_512", hashlib.sha512)}
# id: (name, hash, key bytes, ICV bytes)
INTEG = {12: ("AUTH_HMAC_SHA2_256_128", hashlib.sha256, 32, 16),
         13: ("AUTH_HMAC_SHA2_384_192", hashlib.sha384, 48, 24),
         14: ("AUTH_HMAC_SHA2_512_256", hashlib.sha512, 64, 32)}
DH = {14: "MODP_2048", 15: "MODP_3072", 16: "MODP_4096", 19: "ECP_256", 20: "ECP_384", 31: "CURVE_25519"}
PROTO = {1: "IKE", 2: "AH", 3: "ESP"}


def die(msg):
    print(f"extract.py: {msg}", file=sys.stderr)
    sys.exit(1)


# ---------------------------------------------------------------- pcap

def read_pcap(path):
    """Yields (src_ip, dst_ip, sport, dport, udp_payload) of IPv4 UDP packets."""
    data = Path(path).read_bytes()
    magic = data[:4]
    if magic == b"\xd4\xc3\xb2\xa1":
        end = "<"
    elif magic == b"\xa1\xb2\xc3\xd4":
        end = ">"
    else:
        die("not a classic pcap file")
    linktype = struct.unpack(end + "I", data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(end + "IIII", data[off:off + 16])
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if linktype == 1:
            if struct.unpack(">H", pkt[12:14])[0] != 0x0800:
                continue
            ip = pkt[14:]
        elif linktype == 113:
            ip = pkt[16:]
        else:
            die(f"unsupported pcap link type {linktype}")
        if ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        ihl = (ip[0] & 15) * 4
        total = struct.unpack(">H", ip[2:4])[0]
        udp = ip[ihl:total]
        sport, dport, ulen = struct.unpack(">HHH", udp[:6])
        yield ".".join(map(str, ip[12:16])), ".".join(map(str, ip[16:20])), sport, dport, udp[8:ulen]


# ---------------------------------------------------------------- charon logs

DUMP_HEAD = re.compile(r"^\d+\[(\w+)\] (.+?) => (\d+) bytes @ 0x[0-9a-f]+$")
DUMP_LINE = re.compile(r"^\d+\[\w+\]\s+\d+: ((?:[0-9A-F]{2} ){1,16})")


def read_dumps(path):
    """All hex dumps (`label => N bytes @ 0x..` + lines) of a charon log, in order."""
    dumps = []
    cur = None
    for line in Path(path).read_text(errors="replace").splitlines():
        m = DUMP_HEAD.match(line)
        if m:
            cur = [m.group(1), m.group(2), int(m.group(3)), bytearray()]
            dumps.append(cur)
            continue
        m = DUMP_LINE.match(line)
        if m and cur is not None and len(cur[3]) < cur[2]:
            cur[3] += bytes.fromhex(m.group(1).replace(" ", ""))
            continue
        cur = None
    out = []
    for group, label, n, value in dumps:
        if len(value) != n:
            die(f"truncated dump {label} in {path}")
        out.append((group, label, bytes(value)))
    return out


IKE_LABELS = {"shared Diffie Hellman secret": "dh_shared_secret", "SKEYSEED": "skeyseed",
              "Sk_d secret": "sk_d", "Sk_ai secret": "sk_ai", "Sk_ar secret": "sk_ar",
              "Sk_ei secret": "sk_ei", "Sk_er secret": "sk_er", "Sk_pi secret": "sk_pi",
              "Sk_pr secret": "sk_pr"}


def ike_key_groups(dumps):
    """Groups of IKE SA keys in derivation order (one per IKE SA)."""
    groups = []
    for _, label, value in dumps:
        key = IKE_LABELS.get(label)
        if key is None:
            continue
        if key == "dh_shared_secret" or (key == "skeyseed" and (not groups or "skeyseed" in groups[-1])):
            groups.append({})
        groups[-1][key] = value
    return groups


# ---------------------------------------------------------------- IKE parsing

def parse_header(msg):
    if len(msg) < 28:
        die("short IKE message")
    spi_i, spi_r, np, ver, exch, flags, mid, length = struct.unpack(">8s8sBBBBII", msg[:28])
    if length != len(msg):
        die(f"IKE length {length} != datagram {len(msg)}")
    return dict(spi_i=spi_i, spi_r=spi_r, np=np, version=ver, exchange=exch, flags=flags, mid=mid)


def walk(np, data):
    """Generic payload chain -> list of (type, body)."""
    out = []
    off = 0
    while np != 0:
        if off + 4 > len(data):
            die("truncated payload chain")
        nxt, _, plen = struct.unpack(">BBH", data[off:off + 4])
        if plen < 4 or off + plen > len(data):
            die(f"bad payload length {plen}")
        out.append((np, data[off + 4:off + plen]))
        if np in (46, 53):  # SK/SKF: encrypted, the chain continues inside
            out[-1] = (np, data[off + 4:off + plen], nxt)
            return out, off
        np = nxt
        off += plen
    return out, off


def parse_sa(body):
    """SA payload -> list of proposals {num, protocol, spi, transforms{type: (id, keybits)}}."""
    props = []
    off = 0
    while off < len(body):
        last, _, plen, num, proto, spisize, ntr = struct.unpack(">BBHBBBB", body[off:off + 8])
        spi = body[off + 8:off + 8 + spisize]
        toff = off + 8 + spisize
        trs = {}
        for _ in range(ntr):
            _, _, tlen, ttype, _, tid = struct.unpack(">BBHBBH", body[toff:toff + 8])
            keybits = None
            aoff = toff + 8
            while aoff < toff + tlen:
                atype, aval = struct.unpack(">HH", body[aoff:aoff + 4])
                if atype == 0x800E:
                    keybits = aval
                aoff += 4
            trs.setdefault(ttype, (tid, keybits))
            toff += tlen
        props.append(dict(num=num, protocol=proto, spi=spi, transforms=trs))
        off += plen
        if last == 0:
            break
    return props


def first(payloads, ptype):
    for p in payloads:
        if p[0] == ptype:
            return p[1]
    return None


# ---------------------------------------------------------------- crypto (RFC 7296 §2.13)

def prf(hashf, key, data):
    return hmac.new(key, data, hashf).digest()


def prf_plus(hashf, key, seed, n):
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = prf(hashf, key, t + seed + bytes([i]))
        out += t
        i += 1
    return out[:n]


class Suite:
    def __init__(self, transforms):
        eid, ebits = transforms[1]
        self.encr_id, self.encr_bits = eid, ebits
        if eid not in ENCR:
            die(f"unsupported ENCR {eid}")
        self.encr_name, self.aead_icv = ENCR[eid]
        if eid == 28:
            self.encr_bits = 256
        self.sk_e_len = self.encr_bits // 8 + (4 if self.aead_icv else 0)
        self.integ = INTEG.get(transforms[3][0]) if 3 in transforms and transforms[3][0] != 0 else None
        self.integ_id = transforms[3][0] if self.integ else None
        self.prf_id = transforms.get(2, (None, None))[0]
        self.dh_id = transforms.get(4, (None, None))[0]
        if self.prf_id is not None:
            self.prf_name, self.prf_hash = PRF[self.prf_id]
            self.prf_len = self.prf_hash().digest_size

    def describe(self):
        d = {"encr": {"id": self.encr_id, "name": self.encr_name, "key_bits": self.encr_bits,
                      "key_bytes_with_salt": self.sk_e_len,
                      "icv_bytes": self.aead_icv if self.aead_icv else self.integ[3]}}
        d["integ"] = None if not self.integ else {
            "id": self.integ_id, "name": self.integ[0], "key_bytes": self.integ[2], "icv_bytes": self.integ[3]}
        if self.prf_id is not None:
            d["prf"] = {"id": self.prf_id, "name": self.prf_name, "key_bytes": self.prf_len}
        if self.dh_id is not None:
            d["dh"] = {"id": self.dh_id, "name": DH.get(self.dh_id, str(self.dh_id))}
        return d


def decrypt_sk(msg, hdr_np_off, sk_off, sk_body, skf, keys, suite, from_initiator):
    """Decrypts one SK/SKF payload whose generic header starts at sk_off (in msg)."""
    sk_e = keys["sk_ei"] if from_initiator else keys["sk_er"]
    head = 8 if skf else 4
    body = msg[sk_off + head:sk_off + 4 + len(sk_body)]
    if suite.aead_icv:
        icv = suite.aead_icv
        iv, ct = body[:8], body[8:]
        aad = msg[:sk_off + head]
        nonce = sk_e[-4:] + iv
        aead = AESGCM(sk_e[:-4]) if suite.encr_id == 20 else ChaCha20Poly1305(sk_e[:-4])
        pt = aead.decrypt(nonce, bytes(ct), bytes(aad))  # raises InvalidTag on a bad ICV
    else:
        name, hashf, _, icv = suite.integ
        sk_a = keys["sk_ai"] if from_initiator else keys["sk_ar"]
        mac = hmac.new(sk_a, msg[:len(msg) - icv], hashf).digest()[:icv]
        if not hmac.compare_digest(mac, msg[len(msg) - icv:]):
            die("HMAC ICV mismatch")
        iv, ct = body[:16], body[16:len(body) - icv]
        dec = Cipher(algorithms.AES(sk_e), modes.CBC(iv)).decryptor()
        pt = dec.update(bytes(ct)) + dec.finalize()
    padlen = pt[-1]
    if padlen + 1 > len(pt):
        die("bad pad length")
    return pt[:len(pt) - padlen - 1]


def check_natd(hdr, outer, src, sport, dst, dport):
    """RFC 7296 §2.23: NAT_DETECTION_*_IP = SHA-1(SPIi | SPIr | IP | port). Reports
    whether each hash matches the addresses the datagram really carried (strongSwan
    with kernel-libipsec fakes the source hash to force UDP encapsulation)."""
    import socket
    out = {}
    for t, body in outer:
        if t != 41 or len(body) < 4:
            continue
        ntype = struct.unpack(">H", body[2:4])[0]
        if ntype not in (16388, 16389):
            continue
        ip, port = (src, sport) if ntype == 16388 else (dst, dport)
        calc = hashlib.sha1(hdr["spi_i"] + hdr["spi_r"] + socket.inet_aton(ip) + struct.pack(">H", port)).digest()
        key = "source_ip_hash_matches" if ntype == 16388 else "destination_ip_hash_matches"
        out[key] = calc == body[4 + body[1]:]
    return out


def check_psk_auth(sa, inner, from_initiator, psk, init_msgs):
    """RFC 7296 §2.15: AUTH = prf(prf(PSK, "Key Pad for IKEv2"), signed octets)."""
    h = sa["_suite"].prf_hash
    auth = first(inner, 39)
    if auth[0] != 2:
        die("AUTH method is not shared key MIC")
    if from_initiator:
        octets = init_msgs[0] + sa["_nr"] + prf(h, sa["_keys"]["sk_pi"], first(inner, 35))
    else:
        octets = init_msgs[1] + sa["_ni"] + prf(h, sa["_keys"]["sk_pr"], first(inner, 36))
    expect = prf(h, prf(h, psk, b"Key Pad for IKEv2"), octets)
    if not hmac.compare_digest(expect, auth[4:]):
        die("PSK AUTH payload does not verify")


SIG_OIDS = {  # DER of the AlgorithmIdentifier's OID (RFC 7427 §3 / Appendix A)
    bytes.fromhex("2a864886f70d01010b"): ("sha256WithRSAEncryption", "sha256"),
    bytes.fromhex("2a864886f70d01010c"): ("sha384WithRSAEncryption", "sha384"),
    bytes.fromhex("2a864886f70d01010d"): ("sha512WithRSAEncryption", "sha512"),
}


def check_signature_auth(sa, inner, from_initiator, init_msgs):
    """RFC 7427 §3: AUTH method 14 = ASN.1 AlgorithmIdentifier + signature over the
    same octets as RFC 7296 §2.15, checked against the end-entity CERT payload."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    h = sa["_suite"].prf_hash
    auth = first(inner, 39)
    if auth[0] != 14:
        die(f"AUTH method {auth[0]} is not RFC 7427 digital signature")
    alg_len = auth[4]
    alg = auth[5:5 + alg_len]
    sig = auth[5 + alg_len:]
    # AlgorithmIdentifier: SEQUENCE { OID, [NULL] }
    oid = alg[4:4 + alg[3]]
    name, hname = SIG_OIDS.get(oid, (None, None))
    if name is None:
        die(f"unexpected signature algorithm OID {oid.hex()}")
    cert_body = first(inner, 37)
    if cert_body is None or cert_body[0] != 4:
        die("no X.509 CERT payload beside the signature AUTH")
    cert = x509.load_der_x509_certificate(cert_body[1:])
    if from_initiator:
        octets = init_msgs[0] + sa["_nr"] + prf(h, sa["_keys"]["sk_pi"], first(inner, 35))
    else:
        octets = init_msgs[1] + sa["_ni"] + prf(h, sa["_keys"]["sk_pr"], first(inner, 36))
    hashalg = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}[hname]
    cert.public_key().verify(sig, octets, padding.PKCS1v15(), hashalg)  # raises on failure
    return name


# Wireshark's names in its ikev2_decryption_table (UAT); ChaCha20-Poly1305 is not supported there.
WS_ENCR = {(20, 128): "AES-GCM-128 with 16 octet ICV [RFC5282]", (20, 256): "AES-GCM-256 with 16 octet ICV [RFC5282]",
           (12, 128): "AES-CBC-128 [RFC3602]", (12, 256): "AES-CBC-256 [RFC3602]"}
WS_INTEG = {None: "NONE [RFC4306]", 12: "HMAC_SHA2_256_128 [RFC4868]", 13: "HMAC_SHA2_384_192 [RFC4868]",
            14: "HMAC_SHA2_512_256 [RFC4868]"}


def wireshark_table(ike_sas):
    lines = []
    for sa in ike_sas:
        encr = WS_ENCR.get((sa["encr"]["id"], sa["encr"]["key_bits"]))
        if encr is None:
            continue
        integ = sa["integ"]["id"] if sa["integ"] else None
        lines.append(f'{sa["spi_i"]},{sa["spi_r"]},{sa["sk_ei"]},{sa["sk_er"]},"{encr}",'
                     f'{sa["sk_ai"] or ""},{sa["sk_ar"] or ""},"{WS_INTEG[integ]}"')
    return lines


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser()
    for a in ("pcap", "initiator-log", "responder-log", "out", "case", "initiator-addr", "ike-proposal",
              "esp-proposal", "auth", "psk", "kernel", "fragment-size"):
        ap.add_argument("--" + a, required=True)
    args = ap.parse_args()
    out = Path(args.out)

    dumps_i = read_dumps(args.initiator_log)
    dumps_r = read_dumps(args.responder_log)
    groups_i = ike_key_groups(dumps_i)
    groups_r = ike_key_groups(dumps_r)
    logged_values = {v for _, _, v in dumps_i} | {v for _, _, v in dumps_r}

    ike_sas = []       # dicts, in order of creation
    by_spis = {}       # (spi_i, spi_r) -> index into ike_sas
    child_sas = []
    messages = []
    pending_init = {}  # spi_i -> request info
    pending_ccsa = {}  # (ike index, message id) -> decrypted request payloads
    frags = {}         # (ike index, mid, is_response) -> {num: plaintext}
    init_req_raw = {}  # spi_i -> IKE_SA_INIT request bytes
    init_msgs = {}     # ike index -> (IKE_SA_INIT request, response) bytes
    seq = 0

    def new_ike_sa(spi_i, spi_r, ni, nr, ke_i, ke_r, suite, rekeyed_from):
        idx = len(ike_sas)
        if idx >= len(groups_i):
            die(f"initiator log has no keys for IKE SA #{idx}")
        logged = groups_i[idx]
        if idx < len(groups_r) and groups_r[idx] != logged:
            die(f"initiator and responder logged different keys for IKE SA #{idx}")
        g_ir = logged.get("dh_shared_secret")
        h = suite.prf_hash
        if rekeyed_from is None:
            skeyseed = prf(h, ni + nr, g_ir)
        else:
            skeyseed = prf(h, ike_sas[rekeyed_from]["_keys"]["sk_d"], g_ir + ni + nr)
        integ_len = suite.integ[2] if suite.integ else 0
        lens = [("sk_d", suite.prf_len), ("sk_ai", integ_len), ("sk_ar", integ_len),
                ("sk_ei", suite.sk_e_len), ("sk_er", suite.sk_e_len), ("sk_pi", suite.prf_len),
                ("sk_pr", suite.prf_len)]
        km = prf_plus(h, skeyseed, ni + nr + spi_i + spi_r, sum(n for _, n in lens))
        keys, off = {"skeyseed": skeyseed}, 0
        for name, n in lens:
            keys[name] = km[off:off + n]
            off += n
        for name, value in logged.items():
            if name != "dh_shared_secret" and keys[name] != value:
                die(f"IKE SA #{idx}: re-derived {name} differs from the logged one")
        sa = {"index": idx, "rekeyed_from": rekeyed_from, "spi_i": spi_i.hex(), "spi_r": spi_r.hex(),
              "ni": ni.hex(), "nr": nr.hex(), "ke_i": ke_i.hex(), "ke_r": ke_r.hex(),
              "dh_shared_secret": g_ir.hex()}
        sa.update(suite.describe())
        for name, _ in [("skeyseed", 0)] + lens:
            sa[name] = keys[name].hex() if keys[name] else None  # None: AEAD, no SK_a
        sa["keys_logged_by_strongswan"] = sorted(k for k in logged if k != "dh_shared_secret") + ["dh_shared_secret"]
        sa["_keys"] = keys
        sa["_suite"] = suite
        sa["_ni"], sa["_nr"] = ni, nr
        ike_sas.append(sa)
        by_spis[(spi_i, spi_r)] = idx
        return idx

    def new_child(ike_idx, created_by, req, resp, ni, nr, shared, rekeyed_spi):
        props_req = parse_sa(first(req, 33))
        props_resp = parse_sa(first(resp, 33))
        chosen = props_resp[0]
        suite = Suite(chosen["transforms"])
        h = ike_sas[ike_idx]["_suite"].prf_hash
        sk_d = ike_sas[ike_idx]["_keys"]["sk_d"]
        integ_len = suite.integ[2] if suite.integ else 0
        km = prf_plus(h, sk_d, (shared or b"") + ni + nr, 2 * (suite.sk_e_len + integ_len))
        e, a = suite.sk_e_len, integ_len
        keys = {"encr_key_i": km[:e], "integ_key_i": km[e:e + a], "encr_key_r": km[e + a:2 * e + a],
                "integ_key_r": km[2 * e + a:]}
        logged = all(v in logged_values for v in keys.values() if v)
        spi_i = next(p["spi"] for p in props_req if p["num"] == chosen["num"])
        c = {"ike_sa": ike_idx, "created_by": created_by, "protocol": PROTO.get(chosen["protocol"]),
             "spi_i": spi_i.hex(), "spi_r": chosen["spi"].hex(), "rekeys_spi": rekeyed_spi,
             "ni": ni.hex(), "nr": nr.hex(), "pfs_shared_secret": shared.hex() if shared else None}
        c.update(suite.describe())
        c.update({k: (v.hex() if v else None) for k, v in keys.items()})
        c["keys_also_logged_by_strongswan"] = logged
        child_sas.append(c)

    for src, dst, sport, dport, udp in read_pcap(args.pcap):
        stripped = False
        if 4500 in (sport, dport):
            if len(udp) < 4 or udp[:4] != b"\0\0\0\0":
                continue  # ESP or NAT-keepalive, not IKE
            udp = udp[4:]
            stripped = True
        hdr = parse_header(udp)
        if hdr["version"] != 0x20:
            die("not IKEv2")
        is_resp = bool(hdr["flags"] & 0x20)
        from_initiator = bool(hdr["flags"] & 0x08)
        exch = EXCHANGES.get(hdr["exchange"], str(hdr["exchange"]))
        outer, sk_rel = walk(hdr["np"], udp[28:])
        seq += 1
        m = {"file": None, "exchange": exch, "exchange_type": hdr["exchange"], "is_response": is_resp,
             "initiator_flag": from_initiator, "message_id": hdr["mid"], "spi_i": hdr["spi_i"].hex(),
             "spi_r": hdr["spi_r"].hex(), "sender": "client" if src == args.initiator_addr else "gateway",
             "udp_src_port": sport, "udp_dst_port": dport, "non_esp_marker_stripped": stripped,
             "payloads": [PAYLOADS.get(p[0], str(p[0])) for p in outer], "encrypted": False,
             "fragment": None, "ike_sa": None, "decrypted_file": None, "inner_payloads": None}
        base = f"{seq:02d}-{exch}-{'response' if is_resp else 'request'}"
        # RFC 7296 §2.1: a retransmission is the same datagram again; it is decrypted
        # and checked like the original but creates no SA a second time
        m["retransmission_of"] = next((p["file"] for p in messages if p["_bytes"] == udp), None)
        if hdr["exchange"] == 34:
            m["nat_detection"] = check_natd(hdr, outer, src, sport, dst, dport)
        plain = None
        if hdr["exchange"] == 34 and m["retransmission_of"] is not None:
            m["ike_sa"] = next(p["ike_sa"] for p in messages if p["file"] == m["retransmission_of"])
        elif hdr["exchange"] == 34:
            if not is_resp:
                pending_init[hdr["spi_i"]] = outer
                init_req_raw[hdr["spi_i"]] = udp
            else:
                req = pending_init.get(hdr["spi_i"])
                if req is None:
                    die("IKE_SA_INIT response without request")
                if first(outer, 33) is None:
                    pass  # e.g. INVALID_KE_PAYLOAD / COOKIE: no SA yet
                else:
                    suite = Suite(parse_sa(first(outer, 33))[0]["transforms"])
                    idx = new_ike_sa(hdr["spi_i"], hdr["spi_r"], first(req, 40), first(outer, 40),
                                     first(req, 34)[4:], first(outer, 34)[4:], suite, None)
                    m["ike_sa"] = idx
                    messages[-1]["ike_sa"] = idx if messages and messages[-1]["exchange_type"] == 34 else None
                    init_msgs[idx] = (init_req_raw[hdr["spi_i"]], udp)
        else:
            idx = by_spis.get((hdr["spi_i"], hdr["spi_r"]))
            if idx is None:
                die(f"message {seq} for unknown IKE SA")
            m["ike_sa"] = idx
            sa = ike_sas[idx]
            last = outer[-1]
            if last[0] in (46, 53):
                skf = last[0] == 53
                sk_off = 28 + sk_rel
                pt = decrypt_sk(udp, None, sk_off, last[1], skf, sa["_keys"], sa["_suite"], from_initiator)
                m["encrypted"] = True
                inner_np = last[2]
                if skf:
                    num, total = struct.unpack(">HH", last[1][:4])
                    m["fragment"] = {"number": num, "total": total}
                    base += f"-frag{num}of{total}"
                    key = (idx, hdr["mid"], is_resp)
                    frags.setdefault(key, {})[num] = (pt, inner_np)
                    if len(frags[key]) == total:
                        parts = frags.pop(key)
                        plain = (b"".join(parts[i][0] for i in range(1, total + 1)), parts[1][1])
                else:
                    plain = (pt, inner_np)
                (out / f"{base}.decrypted.bin").write_bytes(pt)
                m["decrypted_file"] = f"{base}.decrypted.bin"
                m["sk_first_payload"] = PAYLOADS.get(inner_np, str(inner_np))
        if plain is not None and m["retransmission_of"] is not None:
            inner, _ = walk(plain[1], plain[0])
            m["inner_payloads"] = [PAYLOADS.get(p[0], str(p[0])) for p in inner]
        elif plain is not None:
            inner, _ = walk(plain[1], plain[0])
            m["inner_payloads"] = [PAYLOADS.get(p[0], str(p[0])) for p in inner]
            idx = m["ike_sa"]
            sa = ike_sas[idx]
            key = (idx, hdr["mid"])
            if hdr["exchange"] == 35 and is_resp and first(inner, 33) is not None:
                req = pending_ccsa.pop(key, None)
                new_child(idx, base, req, inner, sa["_ni"], sa["_nr"], None, None)
            elif hdr["exchange"] == 35 and not is_resp:
                pending_ccsa[key] = inner
            if hdr["exchange"] == 35 and args.auth == "psk" and first(inner, 39) is not None:
                check_psk_auth(sa, inner, from_initiator, args.psk.encode(), init_msgs[idx])
                m["auth_verified"] = "psk"
            elif hdr["exchange"] == 35 and first(inner, 39) is not None:
                m["auth_verified"] = check_signature_auth(sa, inner, from_initiator, init_msgs[idx])
            elif hdr["exchange"] == 36 and not is_resp:
                pending_ccsa[key] = inner
            elif hdr["exchange"] == 36 and is_resp and first(inner, 33) is not None:
                req = pending_ccsa.pop(key)
                props = parse_sa(first(inner, 33))
                if props[0]["protocol"] == 1:  # IKE SA rekey, RFC 7296 §1.3.2
                    new_spi_i = next(p["spi"] for p in parse_sa(first(req, 33)) if p["num"] == props[0]["num"])
                    # which side initiated the rekey decides which nonce is Ni (§2.18)
                    rq_nonce, rs_nonce = first(req, 40), first(inner, 40)
                    new_ike_sa(new_spi_i, props[0]["spi"], rq_nonce, rs_nonce, first(req, 34)[4:],
                               first(inner, 34)[4:], Suite(props[0]["transforms"]), idx)
                else:
                    rekeyed = None
                    for t, body in req:
                        if t == 41 and struct.unpack(">H", body[2:4])[0] == 16393:  # REKEY_SA
                            rekeyed = body[4:4 + body[1]].hex()
                    if first(req, 34) is not None:
                        die("PFS child rekey: add the shared secret lookup")
                    new_child(idx, base, req, inner, first(req, 40), first(inner, 40), None, rekeyed)
        m["file"] = f"{base}.bin"
        m["_bytes"] = udp
        (out / m["file"]).write_bytes(udp)
        messages.append(m)

    # every logged IKE key group must belong to a captured IKE SA
    if len(groups_i) != len(ike_sas):
        die(f"initiator logged {len(groups_i)} IKE key sets, capture has {len(ike_sas)} IKE SAs")
    for sa in ike_sas:
        for k in [k for k in sa if k.startswith("_")]:
            del sa[k]
    for m in messages:
        del m["_bytes"]

    version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "strongswan-charon"],
                             capture_output=True, text=True).stdout.strip() or "unknown"
    if args.auth == "psk":
        auth = {"method": "psk", "psk": args.psk, "initiator_id": "client.example",
                "responder_id": "gw.example"}
    else:
        auth = {"method": "pubkey", "initiator_id": "client.example", "responder_id": "gw.example",
                "ca_cert": "certs/ca.crt", "initiator_cert": "certs/client.crt",
                "initiator_key": "certs/client.key", "responder_cert": "certs/gw.crt",
                "responder_key": "certs/gw.key"}
        if (out / "certs" / "intermediate.crt").exists():
            auth["intermediate_cert"] = "certs/intermediate.crt"
    doc = {
        "format": "baton strongswan capture v1",
        "case": args.case,
        "strongswan_version": version,
        "captured": datetime.date.today().isoformat(),
        "kernel_interface": args.kernel,
        "initiator_addr": args.initiator_addr,
        "ike_proposal": args.ike_proposal,
        "esp_proposal": args.esp_proposal,
        "fragment_size": int(args.fragment_size),
        "auth": auth,
        "ike_sas": ike_sas,
        "child_sas": child_sas,
        "messages": messages,
    }
    (out / "keys.json").write_text(json.dumps(doc, indent=2) + "\n")
    table = wireshark_table(ike_sas)
    if table:
        (out / "ikev2_decryption_table").write_text("\n".join(table) + "\n")
    n_enc = sum(1 for m in messages if m["encrypted"])
    print(f"{args.case}: {len(messages)} messages ({n_enc} encrypted, all decrypted and ICV-checked), "
          f"{len(ike_sas)} IKE SA(s) re-derived, {len(child_sas)} Child SA(s)")


if __name__ == "__main__":
    main()
