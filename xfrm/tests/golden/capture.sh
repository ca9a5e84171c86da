#!/usr/bin/env bash
# Captures the netlink requests that iproute2 sends for a few representative
# XFRM objects, as golden bytes for xfrm/tests/golden.rs.
#
# Run once (as root; needs strace and iproute2): xfrm/tests/golden/capture.sh
# Each `ip` runs in a fresh network namespace (unshare -n) so nothing touches
# the host; NEWSA requests fail there when the kernel lacks ESP, which does not
# matter: the request bytes are captured before the kernel answers.
# Output: one NAME.hex per object (hex bytes of the first XFRM request that
# `ip` sends, nlmsg_seq included; the test masks seq and pid).
set -euo pipefail
cd "$(dirname "$0")"
command -v strace >/dev/null || { echo "capture.sh: install strace first (apt-get install strace)" >&2; exit 1; }
ip -V

capture() {
  local name=$1; shift
  # `-e write=all` dumps every sendmsg buffer as " | OFFSET  HEX...  ASCII |".
  unshare -n strace -f -e trace=sendmsg -e write=all "$@" 2>&1 >/dev/null \
    | awk '/^ \* [0-9]+ bytes in buffer/ { n++ } n == 1 && /^ \| [0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]  / {
             line = substr($0, 11, 49); gsub(/  +/, " ", line); print line }' \
    | sed 's/^ *//; s/ *$//' > "$name.hex" || true   # `ip` itself may fail: see above
  [[ -s "$name.hex" ]] || { echo "capture.sh: nothing captured for $name" >&2; exit 1; }
  printf '%-28s %4d bytes  %s\n' "$name" "$(wc -w < "$name.hex")" "$*"
}

K20=0x000102030405060708090a0b0c0d0e0f10111213
K36=0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223
K16=0x000102030405060708090a0b0c0d0e0f
K32=0x202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f

# An AES-GCM-16 (RFC 4106) tunnel-mode SA with NAT-T UDP encapsulation and lifetimes.
capture sa_aead_tunnel_encap ip xfrm state add src 192.0.2.1 dst 198.51.100.2 proto esp \
  spi 0xc0010001 reqid 65537 mode tunnel replay-window 32 \
  aead 'rfc4106(gcm(aes))' "$K20" 128 \
  encap espinudp 4500 4500 0.0.0.0 \
  limit time-soft 3000 limit time-hard 3600 limit byte-soft 900000 limit byte-hard 1000000

# AES-CBC + HMAC-SHA-256-128 (RFC 4868) in transport mode, with a selector.
capture sa_cbc_hmac_transport ip xfrm state add src 192.0.2.1 dst 198.51.100.2 proto esp \
  spi 0xc0010002 reqid 65538 mode transport replay-window 32 \
  enc 'cbc(aes)' "$K16" auth-trunc 'hmac(sha256)' "$K32" 128 \
  sel src 192.0.2.1/32 dst 198.51.100.2/32 proto udp

# An ESN SA (IPv6) carrying an initial replay state: ChaCha20-Poly1305 (RFC 7634).
capture sa_esn_replay_state ip xfrm state add src 2001:db8::1 dst 2001:db8::2 proto esp \
  spi 0xc0010003 reqid 65539 mode tunnel flag esn replay-window 128 \
  replay-seq 0x10 replay-oseq 0x20 replay-seq-hi 0x1 replay-oseq-hi 0x2 \
  aead 'rfc7539esp(chacha20,poly1305)' "$K36" 128

# An outbound policy with an ESP tunnel template.
capture policy_out_tmpl ip xfrm policy add src 10.1.0.0/24 dst 10.8.0.5/32 dir out priority 1000 \
  tmpl src 192.0.2.1 dst 198.51.100.2 proto esp reqid 65537 mode tunnel

# A forward block policy (what a non-owner cluster node holds for a replicated Child SA).
capture policy_fwd_block ip xfrm policy add src 10.1.0.0/24 dst 10.8.0.5/32 dir fwd priority 1000 \
  action block

# SPI allocation in a range, and an SA delete.
capture allocspi ip xfrm state allocspi src 198.51.100.2 dst 192.0.2.1 proto esp \
  reqid 65537 mode tunnel min 0xc0010000 max 0xc001ffff
capture sa_delete ip xfrm state delete src 192.0.2.1 dst 198.51.100.2 proto esp spi 0xc0010001
capture policy_delete ip xfrm policy delete src 10.1.0.0/24 dst 10.8.0.5/32 dir out
