#!/bin/sh
# Generates the X.509 test certificates for ike/src/policy/cert (run once; the outputs are
# committed). Needs strongSwan's `pki` (Debian: strongswan-pki) and `openssl`.
# Generated 2026-11-21 with strongSwan pki 5.9.x and OpenSSL 3.0.
#
# Regenerating makes new keys: update the CERTREQ hash expected in ../cert/tests.rs.
#
# Validity of everything except the expired/future certs: 01.01.26 - 01.01.36 (the tests
# validate at 2030-01-01).
set -eu
# pki prints TPM plugin warnings on machines without a TPM; they are harmless.
cd "$(dirname "$0")"
F="01.01.26 00:00:00"
T="01.01.36 00:00:00"
key() { pki --gen --type rsa --size 2048 --outform pem > "$1.key.pem"; }

# Root CA and an unrelated root.
key ca
pki --self --ca --in ca.key.pem --dn "C=CH, O=baton test, CN=Root CA" -F "$F" -T "$T" --digest sha256 > ca.der
key other_ca
pki --self --ca --in other_ca.key.pem --dn "C=CH, O=baton test, CN=Other Root CA" -F "$F" -T "$T" > other_ca.der

# Intermediate with pathlen 0, signed with sha384.
key int
pki --pub --in int.key.pem | pki --issue --cacert ca.der --cakey ca.key.pem --ca --pathlen 0 \
  --dn "C=CH, O=baton test, CN=Intermediate CA" -F "$F" -T "$T" --digest sha384 > int.der

# End entity under the intermediate: DN, SANs (DNS, e-mail, IP).
key ee
pki --pub --in ee.key.pem | pki --issue --cacert int.der --cakey int.key.pem \
  --dn "C=CH, O=baton test, CN=client.example" --san client.example --san alice@example.com \
  --san 192.0.2.10 -F "$F" -T "$T" --digest sha256 > ee.der

# The same key, signed with RSASSA-PSS (SHA-256, salt = hash length).
pki --pub --in ee.key.pem | pki --issue --cacert int.der --cakey int.key.pem \
  --dn "C=CH, O=baton test, CN=pss.example" --san pss.example -F "$F" -T "$T" \
  --digest sha256 --rsa-padding pss > ee_pss.der

# Directly under the root, sha512, no SAN: FQDN identity falls back to the CN.
pki --pub --in ee.key.pem | pki --issue --cacert ca.der --cakey ca.key.pem \
  --dn "C=CH, O=baton test, CN=direct.example" -F "$F" -T "$T" --digest sha512 > ee_direct.der

# Expired (2020-2021).
pki --pub --in ee.key.pem | pki --issue --cacert int.der --cakey int.key.pem \
  --dn "C=CH, O=baton test, CN=expired.example" -F "01.01.20 00:00:00" -T "01.01.21 00:00:00" > ee_expired.der

# Issued by the end entity (not a CA); pki refuses that, openssl does not check.
key leaf
openssl req -new -key leaf.key.pem -subj "/C=CH/O=baton test/CN=leaf.example" -out leaf.csr
openssl x509 -req -in leaf.csr -CA ee.der -CAform DER -CAkey ee.key.pem -set_serial 78 \
  -days 3650 -sha256 -outform DER -out leaf_by_ee.der

# A second intermediate below the pathlen-0 intermediate, and a cert below it.
key int2
pki --pub --in int2.key.pem | pki --issue --cacert int.der --cakey int.key.pem --ca \
  --dn "C=CH, O=baton test, CN=Intermediate 2" -F "$F" -T "$T" > int2.der
pki --pub --in leaf.key.pem | pki --issue --cacert int2.der --cakey int2.key.pem \
  --dn "C=CH, O=baton test, CN=deep.example" -F "$F" -T "$T" > ee_too_deep.der

# A CA certificate whose keyUsage lacks keyCertSign, and a cert it issued.
key noks
cat > noks.ext <<'EXT'
basicConstraints=critical,CA:TRUE
keyUsage=critical,digitalSignature
EXT
openssl req -new -key noks.key.pem -subj "/C=CH/O=baton test/CN=No CertSign CA" -out noks.csr
openssl x509 -req -in noks.csr -CA ca.der -CAform DER -CAkey ca.key.pem -set_serial 77 \
  -days 3650 -sha256 -extfile noks.ext -outform DER -out noks_ca.der
pki --pub --in leaf.key.pem | pki --issue --cacert noks_ca.der --cakey noks.key.pem \
  --dn "C=CH, O=baton test, CN=nocertsign.example" -F "$F" -T "$T" > ee_by_noks.der

rm -f noks.csr noks.ext leaf.csr

# An ECDSA hierarchy (signatures we do not verify yet) and an RSA end entity carrying an
# unknown critical extension, both under their own self-signed roots.
pki --gen --type ecdsa --size 256 --outform pem > ec_ca.key.pem
pki --self --ca --in ec_ca.key.pem --dn "C=CH, O=baton test, CN=ECDSA Root" -F "$F" -T "$T" > ec_ca.der
pki --gen --type ecdsa --size 256 --outform pem > ec_ee.key.pem
pki --pub --in ec_ee.key.pem | pki --issue --cacert ec_ca.der --cakey ec_ca.key.pem \
  --dn "C=CH, O=baton test, CN=ecdsa.example" -F "$F" -T "$T" > ee_ecdsa.der
key crit_ca
pki --self --ca --in crit_ca.key.pem --dn "C=CH, O=baton test, CN=Crit Root" -F "$F" -T "$T" > crit_ca.der
pki --pub --in ee.key.pem | pki --issue --cacert crit_ca.der --cakey crit_ca.key.pem \
  --dn "C=CH, O=baton test, CN=crit.example" --critical 1.3.6.1.4.1.55555.1 -F "$F" -T "$T" > ee_crit.der
rm -f ec_ca.key.pem ec_ee.key.pem crit_ca.key.pem
# Keep only the end entity key (ee.key.pem, test-only): IKE_AUTH tests can sign with it.
rm -f ca.key.pem int.key.pem other_ca.key.pem int2.key.pem noks.key.pem leaf.key.pem
