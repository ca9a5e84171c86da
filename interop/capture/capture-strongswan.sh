#!/usr/bin/env bash
# Captures real IKEv2 exchanges between two strongSwan charon daemons (one initiator,
# one responder) in two network namespaces, and turns each run into test data:
# one file per IKE message, keys.json (everything needed to decrypt and re-derive),
# the configs, a small pcap and SOURCE.md.
#
# Usage (as root, on the host or inside interop's real-kernel VM):
#   interop/capture/capture-strongswan.sh [--kernel libipsec|netlink] [--out DIR] CASE...
#   interop/capture/capture-strongswan.sh all
#   interop/vm/run-in-vm -w testvectors -- interop/capture/capture-strongswan.sh --kernel netlink CASE
#     (kernel-netlink inside Debian's kernel: genuine NAT detection; output in CASE-xfrm/)
# Cases: see `case_config` below (or run with no argument).
#
# The host kernel has XFRM but no ESP, so by default charon uses the kernel-libipsec
# plugin (userspace ESP, Debian package libcharon-extra-plugins) so that Child SAs can
# be installed. strongSwan's libipsec only does UDP-encapsulated ESP, so with it charon
# fakes NAT detection (NAT_DETECTION_*_IP hashes are random; RFC 7296 §2.23 lets a
# peer do this to force UDP encapsulation). `--kernel netlink` (inside a kernel with ESP)
# gives genuine NAT detection hashes.
#
# Needs: strongswan-charon strongswan-swanctl strongswan-pki libstrongswan-standard-plugins
#        libstrongswan-extra-plugins libcharon-extra-plugins tcpdump python3 (+ cryptography
#        for the decryption check in extract.py).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT="$REPO/testvectors/data/strongswan"
KERNEL=libipsec
CASES=()
ALL_CASES=(psk-aes128gcm16-x25519 psk-aes256-sha256-modp2048 psk-chacha20poly1305-ecp256
  rsa-aes256gcm16-prfsha384-ecp384 psk-rekey-dpd-delete rsa-chain-fragmentation
  psk-responder-initiated psk-invalid-ke psk-aes128-sha512-modp3072 psk-aes256-sha384-ecp384)

while [[ $# -gt 0 ]]; do
  case "$1" in
    --kernel) KERNEL=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    all) CASES+=("${ALL_CASES[@]}"); shift ;;
    -h|--help) echo "usage: $0 [--kernel libipsec|netlink] [--out DIR] all|CASE..."; printf '  %s\n' "${ALL_CASES[@]}"; exit 0 ;;
    *) CASES+=("$1"); shift ;;
  esac
done
[[ ${#CASES[@]} -gt 0 ]] || { echo "usage: $0 [--kernel libipsec|netlink] [--out DIR] all|CASE..." >&2; printf '  %s\n' "${ALL_CASES[@]}" >&2; exit 2; }

for tool in ip unshare tcpdump swanctl pki python3; do
  command -v "$tool" >/dev/null || { echo "missing prerequisite: $tool (see scripts/setup)" >&2; exit 1; }
done
CHARON=/usr/lib/ipsec/charon
[[ -x $CHARON ]] || { echo "missing prerequisite: $CHARON (apt install strongswan-charon)" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || { echo "must run as root (network namespaces)" >&2; exit 1; }

PSK="0123456789abcdef0123"
GW_ADDR=198.51.100.1
CL_ADDR=198.51.100.2

# case_config CASE: sets the variables that describe one run.
case_config() {
  IKE_PROPOSAL=aes128gcm16-prfsha256-x25519
  ESP_PROPOSAL=aes128gcm16
  AUTH=psk            # psk | pubkey
  KEY_SPEC="rsa 2048" # for pubkey: key type and size of the end-entity keys
  CHAIN=no            # pubkey: issue end-entity certs from an intermediate CA
  FRAGMENT_SIZE=1280  # charon.fragment_size (bytes of the IP datagram)
  LIFECYCLE=no        # client: child rekey, IKE rekey, liveness, child delete; gw: the same from the responder
  DPD_DELAY=0s
  DPD_ROLE=client     # which side sends liveness checks
  GW_IKE_PROPOSAL=""  # the gateway's IKE proposal when it differs from the client's
  MTU=1500            # of the veth link; bigger lets IKE_AUTH with certificates go unfragmented
  case "$1" in
    psk-aes128gcm16-x25519) ;;
    psk-aes256-sha256-modp2048) IKE_PROPOSAL=aes256-sha256-modp2048; ESP_PROPOSAL=aes256-sha256 ;;
    psk-chacha20poly1305-ecp256) IKE_PROPOSAL=chacha20poly1305-prfsha256-ecp256; ESP_PROPOSAL=chacha20poly1305 ;;
    rsa-aes256gcm16-prfsha384-ecp384) IKE_PROPOSAL=aes256gcm16-prfsha384-ecp384; ESP_PROPOSAL=aes256gcm16; AUTH=pubkey
      MTU=9000; FRAGMENT_SIZE=8000 ;;
    psk-rekey-dpd-delete) LIFECYCLE=yes; DPD_DELAY=2s ;;
    psk-aes128-sha512-modp3072) IKE_PROPOSAL=aes128-sha512-modp3072; ESP_PROPOSAL=aes128-sha512 ;;
    psk-aes256-sha384-ecp384) IKE_PROPOSAL=aes256-sha384-ecp384; ESP_PROPOSAL=aes256-sha384 ;;
    psk-responder-initiated) LIFECYCLE=gw; DPD_DELAY=2s; DPD_ROLE=gw ;;
    # the client's first KE is X25519, the gateway only takes ECP-256: INVALID_KE_PAYLOAD
    # (RFC 7296 §1.3), then a second IKE_SA_INIT with an ECP-256 KE
    psk-invalid-ke) IKE_PROPOSAL=aes128gcm16-prfsha256-x25519-ecp256; GW_IKE_PROPOSAL=aes128gcm16-prfsha256-ecp256 ;;
    rsa-chain-fragmentation) AUTH=pubkey; KEY_SPEC="rsa 3072"; CHAIN=yes; FRAGMENT_SIZE=576 ;;
    *) echo "unknown case: $1" >&2; exit 2 ;;
  esac
}

WORK=$(mktemp -d /tmp/capture-strongswan.XXXXXX)
NS_GW="capsw-$$-gw"
NS_CL="capsw-$$-cl"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
  ip netns del "$NS_GW" 2>/dev/null || true
  ip netns del "$NS_CL" 2>/dev/null || true
}
trap 'cleanup; [[ -n ${KEEP_WORK:-} ]] || rm -rf "$WORK"' EXIT

make_certs() { # make_certs DIR
  local d=$1 type size
  read -r type size <<<"$KEY_SPEC"
  mkdir -p "$d"
  pki --gen --type rsa --size 3072 --outform pem >"$d/ca.key"
  pki --self --ca --lifetime 3650 --in "$d/ca.key" --dn "C=XX, O=baton test, CN=baton test root CA" --outform pem >"$d/ca.crt"
  local issuer_crt=$d/ca.crt issuer_key=$d/ca.key
  if [[ $CHAIN == yes ]]; then
    pki --gen --type rsa --size 3072 --outform pem >"$d/intermediate.key"
    pki --pub --in "$d/intermediate.key" | pki --issue --lifetime 3650 --ca --cacert "$d/ca.crt" --cakey "$d/ca.key" \
      --dn "C=XX, O=baton test, CN=baton test intermediate CA" --outform pem >"$d/intermediate.crt"
    issuer_crt=$d/intermediate.crt issuer_key=$d/intermediate.key
  fi
  local n
  for n in gw client; do
    pki --gen --type "$type" --size "$size" --outform pem >"$d/$n.key"
    pki --pub --in "$d/$n.key" | pki --issue --lifetime 3650 --cacert "$issuer_crt" --cakey "$issuer_key" \
      --dn "C=XX, O=baton test, CN=$n.example" --san "$n.example" --outform pem >"$d/$n.crt"
  done
}

write_strongswan_conf() { # write_strongswan_conf DIR
  local d=$1 kplugins=kernel-netlink
  [[ $KERNEL == libipsec ]] && kplugins="kernel-libipsec kernel-netlink"
  cat >"$d/strongswan.conf" <<EOF
charon {
  load = random nonce openssl chapoly kdf x509 pubkey pem pkcs1 pkcs8 curve25519 revocation constraints $kplugins socket-default vici
  install_routes = no
  fragment_size = $FRAGMENT_SIZE
  plugins {
    vici { socket = unix://$d/charon.vici }
  }
  filelog {
    main {
      path = $d/charon.log
      flush_line = yes
      default = 1
      ike = 4
      chd = 4
      cfg = 2
    }
  }
}
EOF
}

write_swanctl_conf() { # write_swanctl_conf DIR ROLE(gw|client)
  local d=$1 role=$2 me peer addrs ts auth_local auth_remote secrets
  # remote access: the client asks for a virtual IP (CP payload) from the gateway's pool.
  # (A host-to-net tunnel to the client's own address would conflict with IKE traffic
  # under kernel-libipsec, which routes tunnel traffic through a TUN device.)
  local pools=""
  if [[ $role == gw ]]; then
    me=gw.example; peer=client.example; addrs="local_addrs = $GW_ADDR
    pools = vpn"; ts="local_ts = 10.1.0.0/24"
    pools="pools { vpn { addrs = 10.8.0.0/24
    dns = 10.1.0.53 } }"
  else
    me=client.example; peer=gw.example; addrs="remote_addrs = $GW_ADDR
    vips = 0.0.0.0"; ts="remote_ts = 10.1.0.0/24"
  fi
  if [[ $AUTH == psk ]]; then
    auth_local="auth = psk"; auth_remote="auth = psk"
    secrets="ike-1 { id-1 = gw.example
      id-2 = client.example
      secret = \"$PSK\" }"
  else
    auth_local="auth = pubkey
      certs = $d/certs/${me%%.example}.crt"
    auth_remote="auth = pubkey
      cacerts = $d/certs/ca.crt"
    # swanctl loads unencrypted private keys from private/ beside the --file config
    mkdir -p "$d/private"; cp "$d/certs/${me%%.example}.key" "$d/private/"
    secrets=""
  fi
  local authorities=""
  if [[ $CHAIN == yes ]]; then
    authorities="authorities { intermediate { cacert = $d/certs/intermediate.crt } }"
  fi
  cat >"$d/swanctl.conf" <<EOF
connections {
  conn {
    $addrs
    version = 2
    proposals = $( [[ $role == gw && -n $GW_IKE_PROPOSAL ]] && echo "$GW_IKE_PROPOSAL" || echo "$IKE_PROPOSAL" )
    fragmentation = yes
    send_cert = always
    dpd_delay = $( [[ $role == "$DPD_ROLE" ]] && echo "$DPD_DELAY" || echo 0s )
    local {
      id = $me
      $auth_local
    }
    remote {
      id = $peer
      $auth_remote
    }
    children {
      net {
        $ts
        esp_proposals = $ESP_PROPOSAL
      }
    }
  }
}
secrets {
  $secrets
}
$authorities
$pools
EOF
}

start_charon() { # start_charon NS DIR
  local ns=$1 d=$2
  ip netns exec "$ns" unshare -m sh -c "mount -t tmpfs run /run && STRONGSWAN_CONF=$d/strongswan.conf exec $CHARON" >"$d/stdout" 2>&1 &
  PIDS+=($!)
}

wait_for() { # wait_for SECONDS COMMAND...
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [[ $SECONDS -lt $deadline ]] || { echo "timed out waiting for: $*" >&2; return 1; }
    sleep 0.1
  done
}

swan() { # swan ROLE ARGS...
  local d=$WORK/$1; shift
  swanctl "$@" --uri "unix://$d/charon.vici"
}

run_case() {
  local name=$1
  case_config "$name"
  echo "=== $name"
  rm -rf "${WORK:?}"/*
  ip netns add "$NS_GW"; ip netns add "$NS_CL"
  ip link add "capsw$$g" type veth peer name "capsw$$c"
  ip link set "capsw$$g" netns "$NS_GW" name eth0
  ip link set "capsw$$c" netns "$NS_CL" name eth0
  ip -n "$NS_GW" addr add $GW_ADDR/24 dev eth0
  ip -n "$NS_CL" addr add $CL_ADDR/24 dev eth0
  local n
  for n in "$NS_GW" "$NS_CL"; do
    ip -n "$n" link set lo up; ip -n "$n" link set eth0 mtu "$MTU" up
  done
  # the protected network behind the gateway (local_ts): libipsec routes need a source in it
  ip -n "$NS_GW" link add lan0 type veth peer name lan1
  ip -n "$NS_GW" addr add 10.1.0.1/24 dev lan0
  ip -n "$NS_GW" link set lan0 up

  mkdir -p "$WORK/gw" "$WORK/client"
  if [[ $AUTH == pubkey ]]; then
    make_certs "$WORK/certs"
    cp -r "$WORK/certs" "$WORK/gw/certs"; cp -r "$WORK/certs" "$WORK/client/certs"
  fi
  for n in gw client; do write_strongswan_conf "$WORK/$n"; write_swanctl_conf "$WORK/$n" $n; done

  ip netns exec "$NS_GW" tcpdump -i eth0 -n -U --immediate-mode -Z root -s 0 -w "$WORK/capture.pcap" udp port 500 or udp port 4500 \
    2>"$WORK/tcpdump.log" &
  PIDS+=($!)
  wait_for 30 grep -q "listening on" "$WORK/tcpdump.log"
  start_charon "$NS_GW" "$WORK/gw"
  start_charon "$NS_CL" "$WORK/client"
  wait_for 30 swan gw --stats
  wait_for 30 swan client --stats
  swan gw --load-all --file "$WORK/gw/swanctl.conf"
  swan client --load-all --file "$WORK/client/swanctl.conf"

  swan client --initiate --ike conn --child net --timeout 90
  if [[ $LIFECYCLE == yes ]]; then
    sleep 0.3
    swan client --rekey --child net
    wait_for 60 grep -q "CHILD_SA net{2} established" "$WORK/client/charon.log"
    sleep 0.3
    swan client --rekey --ike conn
    wait_for 60 grep -q "IKE_SA conn\[2\] rekeyed" "$WORK/client/charon.log"
    # dpd_delay = 2s on the client: with no traffic it sends one empty INFORMATIONAL
    wait_for 60 grep -q "sending DPD request" "$WORK/client/charon.log"
    sleep 0.3
    swan client --terminate --child net --timeout 60
  elif [[ $LIFECYCLE == gw ]]; then
    # the same steps started by the gateway (the original responder): requests with
    # the Initiator flag clear, the gateway's own Message IDs, and an IKE SA rekey that
    # makes the gateway the new IKE SA's initiator (RFC 7296 §2.18)
    sleep 0.3
    swan gw --rekey --child net
    wait_for 60 grep -q "CHILD_SA net{2} established" "$WORK/gw/charon.log"
    sleep 0.3
    swan gw --rekey --ike conn
    wait_for 60 grep -q "IKE_SA conn\[2\] rekeyed" "$WORK/gw/charon.log"
    wait_for 60 grep -q "sending DPD request" "$WORK/gw/charon.log"
    sleep 0.3
    swan gw --list-sas --raw >"$WORK/list-sas-gw.txt"
    swan gw --terminate --ike conn --timeout 60
    sleep 0.3
  fi
  if [[ $LIFECYCLE != gw ]]; then
    swan client --list-sas --raw >"$WORK/list-sas-client.txt"
    swan gw --list-sas --raw >"$WORK/list-sas-gw.txt"
    swan client --terminate --ike conn --timeout 60
  fi
  sleep 0.3
  cleanup

  # kernel-netlink runs (inside a kernel with ESP) go beside the libipsec ones
  local dest=$OUT/$name
  [[ $KERNEL == netlink ]] && dest=$OUT/$name-xfrm
  rm -rf "$dest"; mkdir -p "$dest/config/gw" "$dest/config/client"
  for n in gw client; do
    cp "$WORK/$n/swanctl.conf" "$WORK/$n/strongswan.conf" "$dest/config/$n/"
  done
  [[ $AUTH == pubkey ]] && cp -r "$WORK/certs" "$dest/certs"
  cp "$WORK/capture.pcap" "$dest/capture.pcap"
  python3 "$HERE/extract.py" --pcap "$WORK/capture.pcap" --initiator-log "$WORK/client/charon.log" \
    --responder-log "$WORK/gw/charon.log" --out "$dest" --case "$name" --initiator-addr $CL_ADDR \
    --ike-proposal "$IKE_PROPOSAL" --esp-proposal "$ESP_PROPOSAL" --auth "$AUTH" --psk "$PSK" \
    --kernel "$KERNEL" --fragment-size "$FRAGMENT_SIZE"
  # configs reference the temporary directory; make them readable as documentation
  sed -i "s#$WORK/\(gw\|client\)/#/etc/capture/#g" "$dest"/config/*/*.conf
  tshark_check "$dest"
  write_source_md "$dest" "$name"
}

# An independent check: Wireshark's IKEv2 dissector decrypts every SK payload with the
# keys we extracted (skipped for ChaCha20-Poly1305, which Wireshark cannot decrypt).
tshark_check() {
  local dest=$1
  command -v tshark >/dev/null || { echo "tshark not installed: skipping the Wireshark check"; return 0; }
  [[ -f $dest/ikev2_decryption_table ]] || { echo "no Wireshark key table for this suite"; return 0; }
  local home; home=$(mktemp -d)
  mkdir -p "$home/.config/wireshark"
  cp "$dest/ikev2_decryption_table" "$home/.config/wireshark/"
  local want got
  want=$(python3 -c 'import json,sys; print(sum(1 for m in json.load(open(sys.argv[1]))["messages"] if m["encrypted"]))' "$dest/keys.json")
  got=$(HOME=$home tshark -r "$dest/capture.pcap" -V 2>/dev/null | grep -c "Decrypted Data" || true)
  rm -rf "$home"
  [[ $got -eq $want ]] || { echo "tshark decrypted $got of $want encrypted messages" >&2; exit 1; }
  echo "tshark decrypted $got of $want encrypted messages"
}

write_source_md() {
  local dest=$1 name=$2 seq notes="" checks="" files=""
  if [[ $LIFECYCLE == gw ]]; then
    seq="Sequence: the client initiates; then the gateway (the original responder) runs
\`swanctl --rekey --child net\` (CREATE_CHILD_SA with REKEY_SA, then the delete of the
old Child SA), \`swanctl --rekey --ike conn\` (CREATE_CHILD_SA with KE; the gateway
becomes the new IKE SA's initiator), its dpd_delay = 2s makes it send an empty
INFORMATIONAL, and \`swanctl --terminate --ike conn\` on the gateway deletes the IKE SA."
  elif [[ $LIFECYCLE == yes ]]; then
    seq="Sequence: initiate; \`swanctl --rekey --child net\` (CREATE_CHILD_SA with REKEY_SA, then
the delete of the old Child SA); \`swanctl --rekey --ike conn\` (CREATE_CHILD_SA with KE,
then the delete of the old IKE SA); the client's dpd_delay = 2s makes it send an empty
INFORMATIONAL (liveness check); \`swanctl --terminate --child net\` (delete of the Child
SA); \`swanctl --terminate --ike conn\` (delete of the IKE SA)."
  else
    seq="Sequence: initiate (IKE_SA_INIT, IKE_AUTH with the Child SA), then \`swanctl --terminate
--ike conn\` (INFORMATIONAL with a Delete payload)."
  fi
  if [[ $KERNEL == libipsec ]]; then
    notes="kernel-libipsec (userspace ESP; the host kernel has no ESP) only does UDP-encapsulated
ESP, so charon fakes NAT detection: the NAT_DETECTION_*_IP hashes do not match the
addresses, and the exchange moves to port 4500 after IKE_SA_INIT."
  fi
  [[ $AUTH == psk ]] && checks="; both PSK AUTH payloads verify (RFC 7296 §2.15)"
  [[ $AUTH == pubkey ]] && files="
- \`certs/\`: the CA, certificates and private keys made with strongSwan's \`pki\` for this
  run (throwaway test keys)."
  cat >"$dest/SOURCE.md" <<EOF
# strongSwan capture: $name

Produced $(date -u +%Y-%m-%d) with Debian bookworm's strongSwan $(dpkg-query -W -f='${Version}' strongswan-charon)
(charon + swanctl, kernel interface: $KERNEL) by

    $( [[ $KERNEL == netlink ]] && echo "interop/vm/run-in-vm -w testvectors -- " )interop/capture/capture-strongswan.sh --kernel $KERNEL $name

Two charon daemons, each in its own network namespace, mount namespace (/run) and vici
socket: the client (initiator, $CL_ADDR, id client.example) and the gateway (responder,
$GW_ADDR, id gw.example), joined by a veth pair; tcpdump on the gateway's side.
IKE proposal \`$IKE_PROPOSAL\`${GW_IKE_PROPOSAL:+ (gateway: \`$GW_IKE_PROPOSAL\`)}, ESP proposal \`$ESP_PROPOSAL\`, authentication: $AUTH,
charon.fragment_size = $FRAGMENT_SIZE. The client asks for a virtual IP (CP payload) from
the gateway's pool 10.8.0.0/24; the gateway protects 10.1.0.0/24.

$seq

$notes

Files:
- \`NN-EXCHANGE-request|response[-fragKofN].bin\`: each IKE message as sent, from the IKE
  header on (UDP payload; the 4-byte non-ESP marker of port 4500 removed), in capture order.
- \`NN-...decrypted.bin\`: the plaintext of that message's SK (or SKF) payload: the inner
  payload chain without padding and pad length (for SKF: this fragment's piece only).
- \`keys.json\`: transforms, SPIs, nonces, KE values, the DH shared secret, SKEYSEED, SK_*
  for every IKE SA (rekeyed ones too), Child SA SPIs and keys, the PSK or the certificate
  files, and an index of the messages. Every key was re-derived from the nonces, SPIs and
  shared secret (RFC 7296 §2.14, §2.17, §2.18) and compared with the values both charons
  logged at \`ike = 4\`, \`chd = 4\`; every SK/SKF payload was decrypted and its ICV
  checked by interop/capture/extract.py$checks.
- \`ikev2_decryption_table\`: the same keys as Wireshark's IKEv2 decryption table (UAT);
  \`tshark\` decrypted every encrypted message of \`capture.pcap\` with it (absent for
  ChaCha20-Poly1305, which Wireshark does not decrypt).
- \`config/{gw,client}/\`: the strongswan.conf and swanctl.conf used (temporary paths
  replaced by /etc/capture/).$files
- \`capture.pcap\`: the raw capture (IKE only).
EOF
}


for c in "${CASES[@]}"; do run_case "$c"; done
