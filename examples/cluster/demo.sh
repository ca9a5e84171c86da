#!/bin/sh
# A three-node batond cluster behind one shared VIP, in network namespaces on this
# machine (root needed), with an optional strongSwan client. See docs/operations.md.
#
#   examples/cluster/demo.sh up        # namespaces, bridge, key, gw1..gw3 started
#   examples/cluster/demo.sh client    # a strongSwan client (kernel-libipsec) connects
#   examples/cluster/demo.sh status    # ikectl cluster + list-sas on every node
#   examples/cluster/demo.sh kill gw1  # kill -9 one node (start it again: start gw1)
#   examples/cluster/demo.sh start gw1
#   examples/cluster/demo.sh down      # stop everything, remove the namespaces
#
# Topology: namespace bd-lan holds bridge br0 (multicast snooping off); gw1..gw3 have
# 10.0.0.11..13 (heartbeat, replication) plus the VIP 10.0.0.1/32; the client has
# 10.0.0.100 and a permanent neighbour entry VIP -> 01:00:5e:00:00:01, a multicast MAC
# that every node accepts, so the bridge floods each of its frames to every node.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
RUN=/tmp/baton-demo
BIN=${BATON_BIN:-$ROOT/target/release}
MCAST=01:00:5e:00:00:01
VIP=10.0.0.1
NODES="gw1 gw2 gw3"

need() { [ -x "$BIN/$1" ] || { echo "demo: $BIN/$1 missing: cargo build --release -p gateway (or set BATON_BIN)" >&2; exit 1; }; }

ns() { ip netns exec "bd-$1" sh -c "$2"; }

up() {
  need batond; need ikectl
  mkdir -p "$RUN"
  [ -f "$RUN/cluster.key" ] || "$BIN/batond" --gen-cluster-key "$RUN/cluster.key"
  for n in lan $NODES client; do
    ip netns add "bd-$n"
    ip -n "bd-$n" link set lo up
  done
  ip -n bd-lan link add br0 type bridge mcast_snooping 0
  ip -n bd-lan link set br0 up
  i=0
  for n in $NODES client; do
    i=$((i + 1))
    ip link add "bd-$n" netns bd-lan type veth peer name eth0 netns "bd-$n"
    ip -n bd-lan link set "bd-$n" master br0 up
    ip -n "bd-$n" link set eth0 up
  done
  i=0
  for n in $NODES; do
    i=$((i + 1))
    ip -n "bd-$n" addr add "10.0.0.1$i/24" dev eth0
    ip -n "bd-$n" addr add "$VIP/32" dev eth0
    ip -n "bd-$n" maddr add "$MCAST" dev eth0
    start "$n"
  done
  ip -n bd-client addr add 10.0.0.100/24 dev eth0
  ip -n bd-client neigh replace "$VIP" lladdr "$MCAST" dev eth0 nud permanent
  sleep 1
  status
}

start() {
  ip netns exec "bd-$1" "$BIN/batond" --config "$HERE/$1.toml" >"$RUN/$1.log" 2>&1 &
  echo "$!" >"$RUN/$1.pid"
  echo "started $1 (pid $!, log $RUN/$1.log)"
}

kill9() {
  kill -9 "$(cat "$RUN/$1.pid")"
  echo "killed $1 with SIGKILL at $(date +%T.%N)"
}

client() {
  rm -rf "$RUN/client"
  mkdir -p "$RUN/client"
  cat >"$RUN/client/strongswan.conf" <<EOF
charon {
  load = random nonce openssl kdf pem pkcs1 x509 pubkey curve25519 kernel-libipsec kernel-netlink socket-default vici
  install_routes = no
  plugins { vici { socket = unix://$RUN/client/charon.vici } }
  filelog { main { path = $RUN/client/charon.log
    time_format = %T
    append = no
    flush_line = yes
    default = 1
    ike = 2 } }
}
EOF
  cat >"$RUN/client/swanctl.conf" <<EOF
connections { home {
  remote_addrs = $VIP
  vips = 0.0.0.0
  proposals = aes128gcm16-prfsha256-x25519
  dpd_delay = 10s
  local { auth = psk
    id = client.example }
  remote { auth = psk
    id = gw.example }
  children { net { remote_ts = 10.1.0.0/24
    esp_proposals = aes128gcm16 } } } }
secrets { ike-1 { id-1 = client.example
  id-2 = gw.example
  secret = "example-only-cluster-psk" } }
EOF
  ip netns exec bd-client unshare -m sh -c \
    "mount -t tmpfs run /run && STRONGSWAN_CONF=$RUN/client/strongswan.conf exec /usr/lib/ipsec/charon" \
    >"$RUN/client/stdout" 2>&1 &
  echo "$!" >"$RUN/client.pid"
  sleep 1
  swanctl --load-all --file "$RUN/client/swanctl.conf" --uri "unix://$RUN/client/charon.vici"
  swanctl --initiate --ike home --child net --uri "unix://$RUN/client/charon.vici"
}

status() {
  for n in $NODES; do
    echo "== $n"
    "$BIN/ikectl" --socket "$RUN/$n.sock" cluster || true
    "$BIN/ikectl" --socket "$RUN/$n.sock" list-sas || true
  done
}

down() {
  for f in "$RUN"/*.pid; do
    [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
  done
  sleep 0.5
  for n in lan $NODES client; do ip netns del "bd-$n" 2>/dev/null || true; done
  rm -f "$RUN"/*.pid "$RUN"/*.sock
}

case "${1:-}" in
  up) up ;;
  client) client ;;
  status) status ;;
  kill) kill9 "$2" ;;
  start) start "$2" ;;
  down) down ;;
  *) sed -n '2,11p' "$0"; exit 2 ;;
esac
