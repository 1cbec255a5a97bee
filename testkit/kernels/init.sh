#!/bin/sh
# /init of the kernel-range VM that testkit/kernels/run.sh builds: busybox,
# netward, the kernel test binary, nft and ip, nothing else. It loads the
# netfilter modules, runs the kernel tests and the reconcile job on the
# bundled example, prints one "NWVM PASS:" or "NWVM FAIL:" line per check,
# then "NWVM SUMMARY ..." and "NWVM EXIT <0|1>", and powers off.
# run.sh writes /etc/netward-vm.conf (ONLY, KVER, NETWARD, PROBE, TESTBIN).

export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
mkdir -p /run/netns
mount -t tmpfs tmpfs /tmp
. /etc/netward-vm.conf

# busybox has an `ip` applet and its shell may prefer applets: the real
# iproute2 and nftables are always called by path here.
IP=/usr/sbin/ip
NFT=/usr/sbin/nft
npass=0
nfail=0
ok() { npass=$((npass + 1)); echo "NWVM PASS: $*"; }
bad() { nfail=$((nfail + 1)); echo "NWVM FAIL: $*"; }
# check DESCRIPTION COMMAND...: one PASS or FAIL line by the command's status.
check() { d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }
finish() {
  echo "NWVM SUMMARY passed=$npass failed=$nfail kernel=$(uname -r)"
  if [ "$nfail" -eq 0 ] && [ "$npass" -gt 0 ]; then st=0; else st=1; fi
  echo "NWVM EXIT $st"
  sync
  poweroff -f
  sleep 5
}
up=$(cut -d' ' -f1 /proc/uptime)
echo "NWVM BEGIN kernel=$(uname -r) uptime=${up}s only=$ONLY"

# ---- modules ----------------------------------------------------------------
# crc32c_generic first: libcrc32c (nf_conntrack, nf_nat) asks for "crc32c"
# through the crypto API, not through a module dependency. The rest pull in
# what they depend on (nfnetlink, nf_tables, nf_defrag_*, ...); anything else
# the kernel asks for later comes through /sbin/modprobe (busybox).
mods_ok=1
for m in crc32c_generic libcrc32c veth nf_tables nf_conntrack nft_ct nft_log nf_log_syslog \
  nft_reject_inet nft_fib_inet nft_limit; do
  if ! modprobe "$m"; then
    echo "modprobe $m failed"
    mods_ok=0
  fi
done
if [ "$mods_ok" = 1 ]; then ok "modules loaded ($(wc -l < /proc/modules) in the kernel)"; else bad "modules loaded"; fi
echo "kernel.modprobe=$(cat /proc/sys/kernel/modprobe)"
$IP link set lo up

# ---- kernel tests (testkit/tests/kernel.rs) ---------------------------------
if [ "$ONLY" != reconcile ]; then
  echo "NWVM BEGIN kernel tests: $TESTBIN"
  t0=$(cut -d' ' -f1 /proc/uptime)
  (
    CI=1 RUST_BACKTRACE=1 "$TESTBIN" --test-threads=1 2>&1
    echo $? > /tmp/kt.rc
  ) | tee /tmp/kt.log
  rc=$(cat /tmp/kt.rc)
  t1=$(cut -d' ' -f1 /proc/uptime)
  grep -E '^test [^ ]+ \.\.\. ' /tmp/kt.log > /tmp/kt.res
  n=0
  while read -r _ name _ res rest; do
    n=$((n + 1))
    case "$res" in
      ok) ok "kernel test $name" ;;
      *) bad "kernel test $name: $res $rest" ;;
    esac
  done < /tmp/kt.res
  check "kernel test binary: $n tests, exit $rc (${t0}s..${t1}s uptime)" test "$rc" = 0 -a "$n" -gt 0
fi

# ---- the reconcile job on the bundled example ----------------------------------
if [ "$ONLY" != kernel ]; then
  echo "NWVM BEGIN reconcile: $NETWARD on /repo"
  sysctl -qw net.ipv4.ip_forward=1
  # node-b's pods as Calico wires them: a veth per pod, a /32 route to it on
  # the node, a link-local gateway in the pod. netward learns each pod's link
  # from these routes.
  pod() { # pod NAME IP
    $IP netns add "nwb-$1" &&
      $IP link add "cali$1" type veth peer name eth0 netns "nwb-$1" &&
      $IP addr add 169.254.1.1/32 dev "cali$1" &&
      $IP link set "cali$1" up &&
      $IP -n "nwb-$1" link set lo up &&
      $IP -n "nwb-$1" link set eth0 up &&
      $IP -n "nwb-$1" addr add "$2/32" dev eth0 &&
      $IP -n "nwb-$1" route add 169.254.1.1 dev eth0 scope link &&
      $IP -n "nwb-$1" route add default via 169.254.1.1 dev eth0 &&
      $IP route add "$2/32" dev "cali$1"
  }
  PG=10.244.2.30
  if pod api 10.244.2.21 && pod pg $PG && pod debug 10.244.2.40; then
    ok "node-b's pods wired (api 10.244.2.21, postgres $PG, debug 10.244.2.40)"
  else
    bad "node-b's pods wired"
  fi
  $IP netns exec nwb-pg "$PROBE" serve --tcp 5432,6432 > /tmp/pg.out 2>&1 &
  for _ in $(seq 1 60); do grep -q ready /tmp/pg.out && break; sleep 0.5; done
  # probe FROM PORT: 0 connected, 1 dropped (timeout), 2 refused
  probe() {
    $IP netns exec "nwb-$1" "$PROBE" connect tcp $PG "$2" --timeout-ms 3000 > /dev/null 2>&1
    echo $?
  }
  expect() { # expect FROM PORT WANT(0|1) WHEN
    got=$(probe "$1" "$2")
    check "$4: $1 -> postgres:$2 $(if [ "$3" = 0 ]; then echo connects; else echo is dropped; fi) (probe exit $got)" test "$got" = "$3"
  }
  expect api 5432 0 "before any policy"
  expect debug 5432 0 "before any policy"

  status=/tmp/netward-status.json
  # pass LABEL [ARGS...]: one `reconcile --once`; sets $rc and $out.
  pass() {
    label=$1
    shift
    echo "NWVM RUN $label: netward reconcile --once --repo /repo --path policies --cluster /repo/policies/cluster.yaml --node node-b $*"
    s0=$(cut -d' ' -f1 /proc/uptime)
    out=$(timeout 300 "$NETWARD" reconcile --once --repo /repo --path policies \
      --cluster /repo/policies/cluster.yaml --node node-b --status $status "$@" 2>&1)
    rc=$?
    s1=$(cut -d' ' -f1 /proc/uptime)
    echo "$out" | sed 's/^/  | /'
    echo "  exit $rc, ${s0}s..${s1}s uptime"
  }
  has() { echo "$out" | grep -q -- "$1"; }
  table() { $NFT -s list table inet netward 2> /dev/null; }

  pass "1 first pass (main)"
  check "1 first pass: exit 0 and result=applied (exit $rc)" test "$rc" = 0 -a -n "$(has result=applied && echo y)"
  table > /tmp/t1
  check "1 first pass: table inet netward exists ($(wc -l < /tmp/t1) lines)" test -s /tmp/t1
  expect api 5432 0 "1 main enforced"
  expect debug 5432 1 "1 main enforced"
  expect api 6432 1 "1 main enforced"

  pass "2 the same commit again"
  check "2 same commit: exit 0 and result=unchanged (exit $rc)" test "$rc" = 0 -a -n "$(has result=unchanged && echo y)"
  table > /tmp/t2
  check "2 same commit: the table is untouched" cmp -s /tmp/t1 /tmp/t2

  pass "3 a policy edit (branch edit: the API may also reach postgres on 6432)" --ref edit
  check "3 policy edit: exit 0 and result=applied (exit $rc)" test "$rc" = 0 -a -n "$(has result=applied && echo y)"
  check "3 policy edit: the two policies' chains rewritten (and a new port set), nothing else" \
    has "0 chains created, 2 rewritten, 0 deleted; 0 elements added, 0 removed; 1 sets/maps created, 0 deleted"
  table > /tmp/t3
  check "3 policy edit: the table now has port 6432" grep -q 6432 /tmp/t3
  expect api 6432 0 "3 edit enforced"
  expect api 5432 0 "3 edit enforced"
  expect debug 6432 1 "3 edit enforced"

  pass "4 an invalid policy (branch invalid)" --ref invalid
  check "4 invalid policy: exit 1 and result=refused (exit $rc)" test "$rc" = 1 -a -n "$(has result=refused && echo y)"
  table > /tmp/t4
  check "4 invalid policy: the table is unchanged" cmp -s /tmp/t3 /tmp/t4
  expect api 6432 0 "4 the edit stays in force"

  # A chain that carries the edit: the postgres policy's ingress chain.
  chain=$(awk '/^\tchain pol-in-.*postgre/{print $2; exit}' /tmp/t3)
  echo "NWVM RUN 5 nft flush chain inet netward $chain"
  $NFT flush chain inet netward "$chain"
  table > /tmp/t5
  check "5 hand edit: the chain $chain was flushed" test -n "$chain" -a -n "$(cmp -s /tmp/t3 /tmp/t5 || echo y)"
  pass "5 the commit in force after a hand edit" --ref edit
  check "5 repair: exit 0 and result=applied (exit $rc)" test "$rc" = 0 -a -n "$(has result=applied && echo y)"
  check "5 repair: one chain rewritten, nothing else" \
    has "0 chains created, 1 rewritten, 0 deleted; 0 elements added, 0 removed; 0 sets/maps created, 0 deleted"
  table > /tmp/t6
  check "5 repair: the table is as before the flush" cmp -s /tmp/t3 /tmp/t6
  expect api 6432 0 "5 repaired"

  # The DaemonSet's way: a running reconciler notices the hand edit on its
  # next periodic pass (the drift counter and log line).
  echo "NWVM RUN 6 netward reconcile (running, --interval 2) --ref edit, then a flush"
  timeout 300 "$NETWARD" reconcile --repo /repo --path policies --cluster /repo/policies/cluster.yaml \
    --node node-b --status $status --ref edit --interval 2 --listen 127.0.0.1:9290 > /tmp/loop.log 2>&1 &
  loop=$!
  metric() { wget -q -O - http://127.0.0.1:9290/metrics 2> /dev/null | awk -v m="$1" '$1 == m {print $2}'; }
  for _ in $(seq 1 120); do
    [ "$(metric netward_reconcile_duration_seconds_count)" -ge 1 ] 2> /dev/null && break
    sleep 0.5
  done
  echo "  passes so far: $(metric netward_reconcile_duration_seconds_count)"
  $NFT flush chain inet netward "$chain"
  for _ in $(seq 1 120); do
    [ "$(metric netward_drift_repairs_total)" -ge 1 ] 2> /dev/null && break
    sleep 0.5
  done
  drift=$(metric netward_drift_repairs_total)
  kill "$loop" 2> /dev/null
  wait "$loop" 2> /dev/null
  sed 's/^/  | /' /tmp/loop.log
  check "6 running reconciler: drift repaired (netward_drift_repairs_total=$drift)" test "${drift:-0}" -ge 1
  check "6 running reconciler: logged the repair" grep -q "changed by hand; repaired" /tmp/loop.log
  table > /tmp/t7
  check "6 running reconciler: the table is as before the flush" cmp -s /tmp/t3 /tmp/t7
  if ! cmp -s /tmp/t3 /tmp/t7; then diff /tmp/t3 /tmp/t7 | head -40; fi
fi

echo "lsmod (netfilter):"
grep -E '^(nf|nft|x_|veth|libcrc|crc32c)' /proc/modules | cut -d' ' -f1 | tr '\n' ' '
echo
finish
