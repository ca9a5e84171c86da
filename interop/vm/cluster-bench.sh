#!/usr/bin/env bash
# cluster-bench.sh: failover and transfer of a live tunnel between two batond nodes, with
# real ESP at 1,000 datagrams per second each way, measured in the real-kernel VM.
#
# Runs gateway/tests/cluster_vm.rs in bench mode inside interop/vm/run-in-vm (one guest
# boot): two gateways behind a shared VIP (bridge + multicast MAC), a strongSwan client
# (kernel-netlink), a server, a numbered UDP stream each way with receive times.
#   - KILLS times: the owner's machine dies (SIGKILL of batond, then its links down and its
#     XFRM state flushed), the survivor takes over; interruption = the longest silence
#     around the kill (last datagram through the old owner to the first through the new
#     one), the worse direction; also kill to the first datagram after that silence, the
#     later direction. The dead node then comes back (empty kernel state, fresh batond)
#     and rejoins before the next kill.
#   - TRANSFERS times: `ikectl transfer <sa> --to <other>`; interruption = the longest
#     gap in either direction around it; datagrams lost.
#   - tunnels renegotiated = IKE_SA_INIT requests on the wire after the first;
#     repeated ESP (SPI, sequence) pairs on the client's side of the bridge.
# Prints CLUSTER-BENCH lines (one per kill/transfer, then the summary).
#
# Builds the test binary, and with it batond and ikectl (CARGO_BIN_EXE_*), in the release
# profile by default: optimized like an operator's `cargo build --release`, not the
# unoptimized dev profile of `cargo test`. BENCH_PROFILE=dev (or bench, ...) overrides.
#
# Usage: interop/vm/cluster-bench.sh   (as root; env: KILLS=20 TRANSFERS=20,
#   BENCH_PROFILE=release (cargo profile of the build: release, bench, dev, ...),
#   BATON_CLUSTER_VM_HEARTBEAT=100msx3 (interval x multiplier; default 250msx8),
#   BATON_CLUSTER_VM_SYNC=ack|async, BATON_CLUSTER_VM_IKE=<IKE proposal>,
#   BATON_CLUSTER_VM_KEEP=DIR to keep logs and the capture, CARGO_TARGET_DIR)
set -euo pipefail
cd "$(dirname "$0")/../.."
KILLS=${KILLS:-20}
TRANSFERS=${TRANSFERS:-20}
KEEP=${BATON_CLUSTER_VM_KEEP:-}
PROFILE=${BENCH_PROFILE:-release}

# `cargo test --profile dev` would build the tests with the dev profile anyway; name it `test`
# so that cargo picks the same artifacts as a plain `cargo test`.
[[ "$PROFILE" == dev ]] && PROFILE=test
exe=$(cargo test --profile "$PROFILE" -p gateway --test cluster_vm --no-run --message-format=json \
  2>"/tmp/cluster-bench.$$.build" \
  | sed -n 's/.*"executable":"\([^"]*\/cluster_vm-[^"]*\)".*/\1/p' | tail -1)
[[ -x "$exe" ]] || {
  echo "cluster-bench: cannot build the cluster_vm test binary (profile $PROFILE):" >&2
  tail -30 "/tmp/cluster-bench.$$.build" >&2
  exit 1
}
rm -f "/tmp/cluster-bench.$$.build"

rw=()
if [[ -n "$KEEP" ]]; then mkdir -p "$KEEP"; rw=(-w "$KEEP"); fi
echo "cluster-bench: $(date -u +%FT%TZ) profile=$PROFILE exe=$exe"
echo "cluster-bench: $(date -u +%FT%TZ) kills=$KILLS transfers=$TRANSFERS heartbeat=${BATON_CLUSTER_VM_HEARTBEAT:-250msx8} sync=${BATON_CLUSTER_VM_SYNC:-ack} ike=${BATON_CLUSTER_VM_IKE:-aes128gcm16-prfsha256-x25519} host cores=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg)"
set +e
interop/vm/run-in-vm -m 2048 -t 3600 "${rw[@]}" -- env \
  BATON_CLUSTER_VM_GUEST=1 BATON_CLUSTER_VM_MODE=bench BATON_INTEROP_KERNEL=netlink \
  BATON_CLUSTER_BENCH_KILLS="$KILLS" BATON_CLUSTER_BENCH_TRANSFERS="$TRANSFERS" \
  BATON_CLUSTER_VM_HEARTBEAT="${BATON_CLUSTER_VM_HEARTBEAT:-}" \
  BATON_CLUSTER_VM_SYNC="${BATON_CLUSTER_VM_SYNC:-}" \
  BATON_CLUSTER_VM_IKE="${BATON_CLUSTER_VM_IKE:-}" \
  BATON_CLUSTER_VM_KEEP="$KEEP" \
  "$exe" --exact cluster_vm_guest --nocapture --test-threads=1 \
  | tee "/tmp/cluster-bench.$$.log" | grep --line-buffered -E '^CLUSTER-BENCH|^\['
rc=${PIPESTATUS[0]}
set -e
if [[ $rc -ne 0 ]]; then
  echo "cluster-bench: the guest run failed ($rc); its output: /tmp/cluster-bench.$$.log" >&2
  grep -A40 'panicked' "/tmp/cluster-bench.$$.log" | head -80 >&2
  exit "$rc"
fi
rm -f "/tmp/cluster-bench.$$.log"
