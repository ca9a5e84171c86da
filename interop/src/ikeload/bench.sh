#!/bin/bash
# IKE setup rate: batond vs strongSwan charon as responder, same machine, same client
# (ikeload), same proposal (IKE aes128gcm16-prfsha256-x25519, ESP aes128gcm16), PSK and
# RSA-2048 certificates; responder pinned to CPU 1, ikeload to CPU 0; runs interleaved
# A/B. Clients ask for a virtual IP (pool 10.8.0.0/16 on both responders) and every run
# must end with as many Child SAs as IKE SAs ("children" in the JSON). Prints one JSON
# line per run. Needs root, Debian's strongswan packages, and
# release builds of batond and ikeload:
#   cargo build --release -p gateway --bin batond -p interop --bin ikeload
#   interop/src/ikeload/bench.sh <target-dir>/release RUNS COUNT_PSK COUNT_RSA
set -euo pipefail
BIN=${1:?release dir}; RUNS=${2:-3}; N_PSK=${3:-5000}; N_RSA=${4:-1500}
W=$(mktemp -d /tmp/ikebench.XXXX)
C=ikb-$$-c; G=ikb-$$-g
cleanup() {
  for p in $(ip netns pids $G 2>/dev/null) $(ip netns pids $C 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
  ip netns del $C 2>/dev/null || true; ip netns del $G 2>/dev/null || true
  sysctl -q net.core.rmem_default=212992
}
trap cleanup EXIT
ip netns add $C; ip netns add $G
ip link add ikb$$c netns $C type veth peer name ikb$$g netns $G
ip -n $C addr add 198.51.100.2/24 dev ikb$$c; ip -n $G addr add 198.51.100.1/24 dev ikb$$g
ip -n $C link set ikb$$c up; ip -n $G link set ikb$$g up
ip -n $C link set lo up; ip -n $G link set lo up
# An address of the protected network on the gateway: charon's kernel-libipsec needs one
# as the source of the route it installs with each Child SA.
ip -n $G addr add 10.1.0.1/32 dev lo
sysctl -q net.core.rmem_default=4194304
PSK=0123456789abcdef0123

# RSA-2048: one CA, a gateway certificate, one client certificate (all clients use it).
pki --gen --type rsa --size 2048 --outform pem 2>/dev/null > $W/ca.key
pki --self --ca --lifetime 30 --in $W/ca.key --dn "C=XX, O=baton bench, CN=bench CA" --outform pem 2>/dev/null > $W/ca.pem
for n in gw client; do
  pki --gen --type rsa --size 2048 --outform pem 2>/dev/null > $W/$n.key
  pki --pub --in $W/$n.key | pki --issue --lifetime 30 --cacert $W/ca.pem --cakey $W/ca.key \
    --dn "C=XX, O=baton bench, CN=$n.example" --san $n.example --outform pem 2>/dev/null > $W/$n.pem
done

batond_conf() { # $1 = psk|pubkey
  cat <<EOT
[gateway]
listen = ["198.51.100.1"]
control_socket = "$W/b.sock"
dataplane = "memory"
log_level = "warn"
cookie_threshold = 100000
half_open_limit = 100000

[[connection]]
name = "rw"
proposals = ["aes128gcm16-prfsha256-x25519"]
esp_proposals = ["aes128gcm16"]
local_id = "gw.example"
remote_id = "client.example"
local_ts = ["10.1.0.0/24"]
remote_ts = ["dynamic"]
pool = "vpn"
EOT
  if [ "$1" = psk ]; then
    printf 'local_auth = "psk"\nremote_auth = "psk"\n\n[[secret]]\nids = ["gw.example", "client.example"]\npsk = "%s"\n' $PSK
  else
    printf 'local_auth = "pubkey"\nlocal_cert = "%s"\nlocal_key = "%s"\nremote_auth = "pubkey"\nremote_ca = "%s"\n' $W/gw.pem $W/gw.key $W/ca.pem
  fi
  printf '\n[pool.vpn]\naddrs = "10.8.0.0/16"\n'
}

charon_conf() { # $1 = psk|pubkey
  # BENCH_LOG=1: a charon log (level 1) for debugging; the measured runs have none.
  local FILELOG=""
  [ -n "${BENCH_LOG:-}" ] && FILELOG="filelog { f { path = $W/charon.log
    default = 1 } }"
  mkdir -p $W/swanctl/x509 $W/swanctl/private $W/swanctl/x509ca
  cp $W/gw.pem $W/swanctl/x509/; cp $W/gw.key $W/swanctl/private/; cp $W/ca.pem $W/swanctl/x509ca/
  cat > $W/strongswan.conf <<EOT
charon {
  load = random nonce x509 pubkey pkcs1 pkcs8 pem openssl kdf curve25519 hmac gcm revocation constraints kernel-libipsec kernel-netlink socket-default vici
  dos_protection = no
  ikesa_table_size = 32768
  ikesa_table_segments = 16
  install_routes = no
  install_virtual_ip = no
  syslog { daemon { default = -1 } auth { default = -1 } }
  plugins { vici { socket = unix://$W/charon.vici }
    kernel-libipsec { install_routes = no } }
  $FILELOG
}
EOT
  local auth
  if [ "$1" = psk ]; then
    auth="local { auth = psk
      id = gw.example }
    remote { auth = psk
      id = client.example }"
  else
    auth="local { auth = pubkey
      id = gw.example
      certs = gw.pem }
    remote { auth = pubkey
      id = client.example
      cacerts = ca.pem }"
  fi
  cat > $W/swanctl/swanctl.conf <<EOT
connections { rw { version = 2
    local_addrs = 198.51.100.1
    proposals = aes128gcm16-prfsha256-x25519
    unique = never
    send_cert = always
    pools = vpn
    $auth
    children { net { local_ts = 10.1.0.0/24
        esp_proposals = aes128gcm16 } } } }
pools { vpn { addrs = 10.8.0.0/16 } }
secrets { ike-1 { id-1 = gw.example
    id-2 = client.example
    secret = "$PSK" } }
EOT
}

wait_port() { for _ in $(seq 600); do ip netns exec $G ss -Hlun | grep -q '198.51.100.1:500\|\*:500\|0.0.0.0:500' && return 0; sleep 0.05; done; echo "responder did not bind" >&2; return 1; }

run_one() { # $1 = batond|charon  $2 = psk|pubkey  $3 = count
  local pid
  rm -f $W/b.sock $W/charon.vici
  if [ "$1" = batond ]; then
    batond_conf $2 > $W/batond.toml
    ip netns exec $G taskset -c 1 $BIN/batond --config $W/batond.toml 2> $W/batond.log &
    pid=$!
  else
    charon_conf $2
    ip netns exec $G unshare -m sh -c "mount -t tmpfs run /run && STRONGSWAN_CONF=$W/strongswan.conf exec taskset -c 1 /usr/lib/ipsec/charon" > $W/charon.out 2>&1 &
    pid=$!
    for _ in $(seq 600); do [ -S $W/charon.vici ] && break; sleep 0.05; done
    swanctl --load-all --file $W/swanctl/swanctl.conf --uri unix://$W/charon.vici 2>&1 | grep -i "fail\|error" | grep -v "opening directory" >&2 || true
  fi
  wait_port
  local auth=(--psk $PSK)
  [ "$2" = pubkey ] && auth=(--cert $W/client.pem --key $W/client.key --ca $W/ca.pem)
  local out
  out=$(ip netns exec $C taskset -c 0 $BIN/ikeload --target 198.51.100.1:500 --source 198.51.100.2 \
        --ports-per-source 4 --count $3 --half-open 64 --timeout 120 --remote-ts 10.1.0.0/24 --virtual-ip \
        "${auth[@]}" --responder-pid $pid --json 2> $W/ikeload.err) || true; grep -m1 "first failure" $W/ikeload.err >&2 || true
  local drops
  drops=$(ip netns exec $G awk '/^Udp:/{if(h){print $6}else{h=1}}' /proc/net/snmp)
  echo "{\"responder\":\"$1\",\"auth\":\"$2\",\"rcvbuf_errors\":$drops,\"result\":${out:-null}}"
  kill $pid; wait $pid 2>/dev/null || true
  [ -n "${BENCH_LOG:-}" ] && [ -f $W/charon.log ] && grep -m5 -i "fail\|error\|unable" $W/charon.log >&2 || true
}

for r in $(seq $RUNS); do
  for auth in psk pubkey; do
    n=$N_PSK; [ $auth = pubkey ] && n=$N_RSA
    if [ $((r % 2)) = 1 ]; then order="batond charon"; else order="charon batond"; fi
    for resp in $order; do run_one $resp $auth $n; done
  done
done
