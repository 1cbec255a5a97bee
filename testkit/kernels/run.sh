#!/usr/bin/env bash
# Runs netward's enforcer on an older kernel than the host's: Debian 12's
# linux-image-6.1.0-*-amd64, booted under qemu (software emulation, no KVM)
# with a small initramfs holding busybox, netward, the kernel test binary
# (testkit/tests/kernel.rs), nft and ip. Inside, testkit/kernels/init.sh runs
# the kernel tests and the reconcile job on the bundled example.
#
# Usage: testkit/kernels/run.sh [options]
#   --rev REV          build a clean snapshot of commit REV (git archive into
#                      target/kernels/src, built in target/kernels/build)
#                      instead of the working tree as it is
#   --netward PATH     use this netward binary in the VM instead of building
#                      one (e.g. an older commit's, to reproduce a bug)
#   --only WHAT        all (default), kernel (the kernel tests) or reconcile
#                      (the reconcile job)
#   --kernel PACKAGE   a linux-image package (default: the newest
#                      linux-image-6.1.0-N-amd64 apt offers)
#   --timeout SECONDS  for the whole VM run (default 900)
#
# Exit status: 0 only if the VM printed a summary with no failure.
# Everything goes under target/kernels/: the kernel package and its unpacked
# files, the initramfs, the example repository, and the serial log
# (target/kernels/logs/, the newest also as target/kernels/last.log).
# Nothing is installed on the host but the tools it needs (apt-get: qemu-system-x86,
# busybox-static, cpio, kmod, nftables, iproute2, git, binutils, gzip), and the
# host's boot and modules are never touched.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=$repo/target/kernels
rev=
netward_bin=
only=all
kpkg=
vm_timeout=900

while [ $# -gt 0 ]; do
  case "$1" in
    --rev) rev=$2; shift 2 ;;
    --netward) netward_bin=$(realpath "$2"); shift 2 ;;
    --only) only=$2; shift 2 ;;
    --kernel) kpkg=$2; shift 2 ;;
    --timeout) vm_timeout=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$only" in all | kernel | reconcile) ;; *) echo "--only all|kernel|reconcile" >&2; exit 2 ;; esac

say() { printf '\n== %s\n' "$*" >&2; }
started=$(date +%s)
mkdir -p "$out"

# ---- 1. tools and the kernel ---------------------------------------------------
export DEBIAN_FRONTEND=noninteractive
apt_updated=
apt_update_once() {
  if [ -z "$apt_updated" ]; then
    apt-get update -qq
    apt_updated=1
  fi
}
# The command each package provides (busybox-static: checked by package, as
# a dynamic busybox would not work in the initramfs).
export PATH=$PATH:/usr/sbin:/sbin
need=()
for pair in qemu-system-x86:qemu-system-x86_64 busybox-static: cpio:cpio kmod:depmod \
  nftables:nft iproute2:ip git:git binutils:strip gzip:gzip; do
  pkg=${pair%%:*} cmd=${pair#*:}
  if [ -n "$cmd" ]; then
    command -v "$cmd" > /dev/null || need+=("$pkg")
  elif ! dpkg-query -W -f='${Status}' "$pkg" 2> /dev/null | grep -q 'install ok installed'; then
    need+=("$pkg")
  fi
done
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  if ! apt-cache policy "${need[@]}" 2> /dev/null | grep -q 'Candidate: [0-9]'; then apt_update_once; fi
  apt-get install -y -qq --no-install-recommends "${need[@]}" > /dev/null
fi

if [ -z "$kpkg" ]; then
  list() { apt-cache pkgnames linux-image-6.1.0- | grep -E '^linux-image-6\.1\.0-[0-9]+-amd64$' | sort -V; }
  [ -n "$(list)" ] || apt_update_once
  kpkg=$(list | tail -1)
  [ -n "$kpkg" ] || { echo "apt offers no linux-image-6.1.0-*-amd64 (is this Debian 12?)" >&2; exit 1; }
fi
kdir=$out/$kpkg
if [ ! -e "$kdir/.unpacked" ]; then
  say "downloading and unpacking $kpkg into $kdir"
  mkdir -p "$out/debs"
  deb=$(ls "$out/debs/${kpkg}"_*.deb 2> /dev/null | tail -1 || true)
  if [ -z "$deb" ]; then
    dl() { (cd "$out/debs" && apt-get download -q -o APT::Sandbox::User=root "$kpkg"); }
    if ! dl; then
      apt_update_once
      dl
    fi
    deb=$(ls "$out/debs/${kpkg}"_*.deb | tail -1)
  fi
  rm -rf "$kdir"
  dpkg-deb -x "$deb" "$kdir"
  basename "$deb" > "$kdir/.unpacked"
fi
kver=$(ls "$kdir/lib/modules" | head -1)
vmlinuz=$kdir/boot/vmlinuz-$kver
[ -f "$vmlinuz" ] || { echo "no $vmlinuz" >&2; exit 1; }
echo "kernel: $kpkg ($(cat "$kdir/.unpacked")), $kver" >&2

# ---- 2. the binaries -------------------------------------------------------------
if [ -n "$rev" ]; then
  full=$(git -C "$repo" rev-parse --verify "$rev^{commit}")
  src=$out/src
  target=$out/build
  # Kept between runs of the same commit, so cargo rebuilds nothing.
  if [ "$(cat "$src/.netward-rev" 2> /dev/null)" != "$full" ]; then
    say "snapshot of $full in $src"
    rm -rf "$src"
    mkdir -p "$src"
    git -C "$repo" archive --format=tar "$full" | tar -x -C "$src"
    echo "$full" > "$src/.netward-rev"
  fi
  built_from="commit $full"
else
  src=$repo
  target=${CARGO_TARGET_DIR:-$repo/target}
  built_from="the working tree of $repo at $(git -C "$repo" rev-parse --short HEAD)$(git -C "$repo" diff --quiet HEAD -- . ':!fuzz' || echo ' (with uncommitted changes)')"
fi
target=$(mkdir -p "$target" && cd "$target" && pwd)
cargo_() { (cd "$src" && CARGO_TARGET_DIR=$target cargo "$@"); }

say "building in release mode from $built_from"
if [ -z "$netward_bin" ]; then
  cargo_ build --release --locked -p netward --bin netward
  netward_bin=$target/release/netward
fi
cargo_ build --release --locked -p netward-testkit --bin netward-probe
probe_bin=$target/release/netward-probe
test_bin=
if [ "$only" != reconcile ]; then
  test_bin=$(cargo_ test --release --locked -p netward-testkit --test kernel --no-run --message-format=json |
    grep -o '"executable":"[^"]*/deps/kernel-[^"]*"' | tail -1 | sed 's/^"executable":"//; s/"$//')
  [ -x "$test_bin" ] || { echo "cannot find the kernel test binary" >&2; exit 1; }
fi
echo "netward: $netward_bin" >&2
echo "probe:   $probe_bin" >&2
echo "tests:   ${test_bin:-(not run)}" >&2

# ---- 3. the example repository ---------------------------------------------------
# main: the bundled example; edit: the API may also reach postgres on 6432;
# invalid: main plus a policy with an invalid CIDR. Fixed dates and names
# give the same commit ids every run (for the same policies/).
say "example repository"
ex=$out/example-repo
rm -rf "$ex"
mkdir -p "$ex"
cp -r "$src/policies" "$ex/"
gitx() {
  GIT_AUTHOR_DATE=2024-01-01T00:00:00Z GIT_COMMITTER_DATE=2024-01-01T00:00:00Z \
    git -C "$ex" -c user.name=netward-vm -c user.email=vm@netward.invalid -c commit.gpgsign=false \
    -c init.defaultBranch=main "$@"
}
gitx init -q -b main
gitx add -A
gitx commit -qm "the bundled example"
gitx checkout -q -b edit
# Both ends: postgres' ingress and the API's egress (each pod's egress is
# isolated too).
for f in database/postgres.yaml:postgres backend/api.yaml:5432; do
  file=$ex/policies/${f%%:*}
  [ "$(tail -1 "$file")" = "    - port: ${f#*:}" ] ||
    { echo "policies/${f%%:*} changed: update the edit in $0" >&2; exit 1; }
  echo '    - port: 6432' >> "$file"
done
gitx commit -qam "postgres and the API: also 6432"
gitx checkout -q -b invalid main
cat > "$ex/policies/database/broken.yaml" << 'EOF'
# An invalid CIDR: the commit must be refused and the table left alone.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: broken
  namespace: database
spec:
  podSelector:
    matchLabels: {app: postgres}
  ingress:
  - from:
    - ipBlock: {cidr: 10.0.0.0/33}
EOF
gitx add -A
gitx commit -qm "an invalid policy"
gitx checkout -q main
gitx log --all --format='  %h %d %s' >&2

# ---- 4. the initramfs --------------------------------------------------------------
say "initramfs"
root=$out/initramfs
rm -rf "$root"
mkdir -p "$root"/usr/{bin,sbin,lib,lib64} "$root"/{proc,sys,dev,run,tmp,etc,root,var/lib/netward,usr/local/bin}
for d in bin sbin lib lib64; do ln -s "usr/$d" "$root/$d"; done
cp "$(command -v busybox)" "$root/usr/bin/busybox"
for a in $("$root/usr/bin/busybox" --list-full); do
  [ -e "$root/$a" ] || [ -L "$root/$a" ] || ln -s /usr/bin/busybox "$root/$a"
done

# put FILE DEST: copies an executable (debug info stripped) and every shared
# library ldd names for it, the dynamic loader included.
put() {
  mkdir -p "$root$(dirname "$2")"
  rm -f "$root$2"
  strip --strip-debug -o "$root$2" "$1" 2> /dev/null || cp "$1" "$root$2"
  chmod 755 "$root$2"
  ldd "$1" | awk '/=> \//{print $3} /^\t\//{print $1}' | while read -r lib; do
    [ -e "$root$lib" ] || { mkdir -p "$root$(dirname "$lib")" && cp -L "$lib" "$root$lib"; }
  done
}
# The real ip and nft, not busybox's applets of the same name.
for tool in ip nft; do
  path=$(command -v $tool)
  find "$root"/usr/bin "$root"/usr/sbin -name $tool -type l -delete
  put "$path" "/usr/sbin/$tool"
done
put "$netward_bin" /usr/local/bin/netward
# The test binary finds netward-probe and policies/ where they were built
# (CARGO_BIN_EXE_netward-probe, CARGO_MANIFEST_DIR/..): same paths inside.
put "$probe_bin" "$probe_bin"
if [ -n "$test_bin" ]; then
  put "$test_bin" /opt/netward/kernel-tests
  mkdir -p "$root$src"
  cp -r "$src/policies" "$root$src/"
fi
for f in /etc/protocols /etc/services /etc/iproute2 /usr/share/iproute2; do
  if [ -e "$f" ]; then mkdir -p "$root$(dirname "$f")" && cp -rL "$f" "$root$f"; fi
done
echo "root:x:0:0:root:/root:/bin/sh" > "$root/etc/passwd"
cp -a "$ex" "$root/repo"

# Kernel modules from the package: netfilter, veth and crc32c.
m=lib/modules/$kver
mkdir -p "$root/$m/kernel"
for d in kernel/net/netfilter kernel/net/ipv4/netfilter kernel/net/ipv6/netfilter kernel/net/bridge \
  kernel/drivers/net/veth.ko kernel/lib/libcrc32c.ko kernel/crypto/crc32c_generic.ko; do
  if [ -e "$kdir/$m/$d" ]; then
    mkdir -p "$root/$m/$(dirname "$d")"
    cp -r "$kdir/$m/$d" "$root/$m/$d"
  fi
done
cp "$kdir/$m"/modules.{order,builtin,builtin.modinfo} "$root/$m/" 2> /dev/null || true
depmod -b "$root" "$kver"

{
  echo "ONLY=$only"
  echo "KVER=$kver"
  echo "NETWARD=/usr/local/bin/netward"
  echo "PROBE=$probe_bin"
  echo "TESTBIN=/opt/netward/kernel-tests"
} > "$root/etc/netward-vm.conf"
cp "$here/init.sh" "$root/init"
chmod 755 "$root/init"

initrd=$out/initramfs.cpio.gz
(cd "$root" && find . -print0 | cpio --null -o -H newc -R 0:0 --quiet) | gzip -1 > "$initrd"
echo "initramfs: $initrd ($(du -h "$initrd" | cut -f1)), $(find "$root" | wc -l) files" >&2

# ---- 5. boot ---------------------------------------------------------------------
mkdir -p "$out/logs"
log=$out/logs/$kver-$(date -u +%Y%m%dT%H%M%SZ)-$only.log
say "booting $kver under qemu (tcg); serial log: $log"
boot0=$(date +%s)
set +e
timeout "$vm_timeout" qemu-system-x86_64 -accel tcg -m 2048 -smp 1 -nographic -no-reboot -nic none \
  -kernel "$vmlinuz" -initrd "$initrd" -append "console=ttyS0 panic=-1 quiet" < /dev/null 2>&1 |
  tr -d '\r' | tee "$log"
qemu_rc=${PIPESTATUS[0]}
set -e
boot1=$(date +%s)
cp "$log" "$out/last.log"

summary=$(grep -a '^NWVM SUMMARY' "$log" | tail -1 || true)
vm_exit=$(grep -a '^NWVM EXIT' "$log" | tail -1 | awk '{print $3}' || true)
echo
echo "== result ($kpkg, $kver; built from $built_from; netward $netward_bin)"
grep -a -E '^NWVM (PASS|FAIL):' "$log" || true
echo "qemu exit $qemu_rc$([ "$qemu_rc" = 124 ] && echo " (timed out after ${vm_timeout}s)"); VM ${summary:-printed no summary}"
echo "time: VM $((boot1 - boot0)) s (boot and tests), whole script $((boot1 - started)) s; log $log"
if [ "$qemu_rc" = 0 ] && [ "$vm_exit" = 0 ] && [ -n "$summary" ]; then
  echo "PASS"
  exit 0
fi
echo "FAIL"
exit 1
