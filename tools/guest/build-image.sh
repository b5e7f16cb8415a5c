#!/bin/sh
# Build the NetWire test guest: a Debian 12 kernel plus a small busybox
# initramfs whose /init brings up a virtio-net (or e1000) NIC from kernel
# command line knobs and then runs an optional /test.sh.
#
#   tools/guest/build-image.sh [OUTDIR]        default OUTDIR: <repo>/.build/guest
#
# Outputs: OUTDIR/vmlinuz, OUTDIR/initramfs.cpio.gz, OUTDIR/kernel-version, and
# OUTDIR/vmlinux when the kernel can be unpacked and boots by PVH (see below).
# Nothing is installed: the kernel .deb is fetched with `apt-get download`
# into OUTDIR/cache and unpacked there. A second run reuses the cache and
# rebuilds the initramfs only when one of its inputs changed.
#
# Environment:
#   NW_KERNEL_PKG   kernel package to use (default: what linux-image-amd64 depended
#                   on at the first build; see OUTDIR/cache/kernel-package)
set -eu

die() {
    echo "build-image.sh: error: $*" >&2
    exit 1
}
say() {
    echo "build-image.sh: $*"
}

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=${1:-$REPO/.build/guest}
BUSYBOX=/bin/busybox

for tool in apt-get apt-cache dpkg-deb depmod cpio gzip sha256sum awk; do
    command -v "$tool" >/dev/null 2>&1 \
        || die "'$tool' not found (needs apt, dpkg, kmod, cpio, gzip, coreutils and awk)"
done
[ -x "$BUSYBOX" ] || die "$BUSYBOX not found; install it with: apt-get install busybox-static"
# A dynamically linked busybox (package 'busybox') would need its libc in the
# initramfs; only the static build can be the guest's whole userland.
if command -v ldd >/dev/null 2>&1 && LC_ALL=C ldd "$BUSYBOX" 2>&1 | grep -q '=>'; then
    die "$BUSYBOX is dynamically linked; install busybox-static instead of busybox"
fi
for f in init udhcpc.script nw.sh; do
    [ -f "$HERE/$f" ] || die "missing $HERE/$f"
done

mkdir -p "$OUT" || die "cannot create $OUT"
OUT=$(cd "$OUT" && pwd)
CACHE="$OUT/cache"
mkdir -p "$CACHE"

# Paths removed on exit, whichever way the script ends.
CLEANUP=
trap 'rm -rf $CLEANUP' EXIT
trap 'exit 130' HUP INT PIPE TERM

# --- kernel -----------------------------------------------------------------
# The kernel is chosen once and remembered, so that the guest does not change
# under the tests when the mirror moves on (and because apt-cache alone takes
# over a second). Delete OUTDIR/cache/kernel-package to follow the mirror.
KPKG=${NW_KERNEL_PKG:-}
if [ -z "$KPKG" ] && [ -s "$CACHE/kernel-package" ]; then
    KPKG=$(cat "$CACHE/kernel-package")
fi
if [ -z "$KPKG" ]; then
    KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null \
        | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }')
    [ -n "$KPKG" ] || die "apt does not know linux-image-amd64; run 'apt-get update' first (or set NW_KERNEL_PKG)"
fi
case "$KPKG" in
    linux-image-*) ;;
    *) die "kernel package '$KPKG' is not a linux-image-* package" ;;
esac
KVER=${KPKG#linux-image-}
KDIR="$CACHE/$KPKG"

# The NIC drivers the guest can load. Only their module chains are kept from
# the unpacked package: about 1 MB instead of about 400 MB.
WANTED="virtio_pci virtio_net e1000"

# Print the files of module $2 and of its dependencies, in insmod order, from
# the modules.dep in folder $1. modules.dep lists a module's dependencies so
# that the last one has to be loaded first.
module_chain() {
    line=$(grep -E "^(kernel/)?.*/$2\.ko(\.[a-z]+)?:" "$1/modules.dep" | head -n 1)
    [ -n "$line" ] || die "module $2 not found in $1/modules.dep"
    self=${line%%:*}
    deps=${line#*:}
    for d in $deps; do
        echo "$d"
    done | awk '{ a[NR] = $0 } END { for (i = NR; i > 0; i--) print a[i] }'
    echo "$self"
}

# Under TCG, SeaBIOS plus the bzImage's own XZ decompression take about 5 of the
# 9 s a boot needs. QEMU can instead load the uncompressed ELF vmlinux directly
# through its PVH entry point (CONFIG_PVH=y in Debian's config), which boots in
# about 4 s. Print the payload of bzImage $1 into file $2; the payload starts at
# one of the places where the compressor's magic appears (the first match can be
# a false one), and only a result that is an ELF file counts.
extract_vmlinux() {
    for fmt in 'xz:\xfd7zXZ\x00' 'gzip:\x1f\x8b\x08' 'zstd:\x28\xb5\x2f\xfd'; do
        tool=${fmt%%:*}
        command -v "$tool" >/dev/null 2>&1 || continue
        for off in $(LC_ALL=C grep -obUaP "${fmt#*:}" "$1" 2>/dev/null | cut -d: -f1 | head -n 5); do
            tail -c +$((off + 1)) "$1" | "$tool" -dc > "$2" 2>/dev/null
            if [ "$(head -c 4 "$2" | od -An -c | tr -d ' ')" = '177ELF' ]; then
                return 0
            fi
        done
    done
    rm -f "$2"
    return 1
}

if [ ! -f "$KDIR/modules.wanted" ] || [ "$(cat "$KDIR/modules.wanted")" != "$WANTED" ]; then
    deb=$(ls "$CACHE/${KPKG}"_*.deb 2>/dev/null | head -n 1 || true)
    if [ -z "$deb" ]; then
        say "downloading $KPKG (apt-get download, nothing is installed)"
        # apt downloads as the _apt user, which cannot write into a folder
        # owned by root; keep the download as the calling user instead.
        (cd "$CACHE" && apt-get download -q -o APT::Sandbox::User="$(id -un)" "$KPKG") \
            || die "apt-get download $KPKG failed (is the Debian mirror reachable? try 'apt-get update')"
        deb=$(ls "$CACHE/${KPKG}"_*.deb 2>/dev/null | head -n 1 || true)
        [ -n "$deb" ] || die "apt-get download left no ${KPKG}_*.deb in $CACHE"
    fi
    say "unpacking $(basename "$deb")"
    FULL=$(mktemp -d "$CACHE/.unpack.XXXXXX")
    CLEANUP="$CLEANUP $FULL"
    dpkg-deb -x "$deb" "$FULL" || die "dpkg-deb -x $deb failed"
    [ -f "$FULL/boot/vmlinuz-$KVER" ] || die "$deb has no boot/vmlinuz-$KVER"
    # The package's postinst would run depmod; it is never installed, so run it here.
    depmod -b "$FULL" "$KVER" || die "depmod -b $FULL $KVER failed"
    FULLMOD="$FULL/lib/modules/$KVER"
    rm -rf "$KDIR"
    mkdir -p "$KDIR/modules"
    cp "$FULL/boot/vmlinuz-$KVER" "$KDIR/vmlinuz"
    if grep -q '^CONFIG_PVH=y' "$FULL/boot/config-$KVER" 2>/dev/null \
        && extract_vmlinux "$KDIR/vmlinuz" "$KDIR/vmlinux"; then
        say "unpacked vmlinux for PVH boot ($(($(wc -c < "$KDIR/vmlinux") / 1048576)) MB)"
    else
        say "note: no vmlinux (kernel without CONFIG_PVH, or no xz/gzip/zstd); guests boot the slower vmlinuz"
    fi
    cp "$FULLMOD/modules.dep" "$KDIR/modules/modules.dep"
    for m in $WANTED; do
        chain=$(module_chain "$FULLMOD" "$m")
        for rel in $chain; do
            mkdir -p "$KDIR/modules/$(dirname "$rel")"
            cp "$FULLMOD/$rel" "$KDIR/modules/$rel"
        done
    done
    rm -rf "$FULL"
    echo "$WANTED" > "$KDIR/modules.wanted"
fi
[ -n "${NW_KERNEL_PKG:-}" ] || echo "$KPKG" > "$CACHE/kernel-package"
MODDIR="$KDIR/modules"

# --- initramfs --------------------------------------------------------------
VIRTIO_CHAIN=$(module_chain "$MODDIR" virtio_pci; module_chain "$MODDIR" virtio_net)
E1000_CHAIN=$(module_chain "$MODDIR" e1000)
for m in $VIRTIO_CHAIN $E1000_CHAIN; do
    case "$m" in
        *.ko) ;;
        *) die "module $m is compressed; busybox insmod needs plain .ko files" ;;
    esac
done

# The initramfs is rebuilt only when something that goes into it changed.
STAMP=$( {
    echo "$KVER"
    echo "$VIRTIO_CHAIN" "$E1000_CHAIN"
    sha256sum "$BUSYBOX" "$KDIR/vmlinuz" "$HERE/init" "$HERE/udhcpc.script" "$HERE/nw.sh" \
        "$HERE/build-image.sh" | awk '{ print $1 }'
} | sha256sum | awk '{ print $1 }')

if [ -f "$OUT/initramfs.cpio.gz" ] && [ -f "$OUT/vmlinuz" ] && [ -f "$OUT/kernel-version" ] \
    && { [ -f "$OUT/vmlinux" ] || [ ! -f "$KDIR/vmlinux" ]; } && [ -f "$OUT/.stamp" ] && [ "$(cat "$OUT/.stamp")" = "$STAMP" ]; then
    say "up to date: $OUT (kernel $KVER)"
    exit 0
fi

ROOT=$(mktemp -d "$OUT/.root.XXXXXX")
CLEANUP="$CLEANUP $ROOT $OUT/.initramfs.tmp"
mkdir -p "$ROOT/bin" "$ROOT/sbin" "$ROOT/usr" "$ROOT/etc" "$ROOT/lib/nw-modules" \
    "$ROOT/proc" "$ROOT/sys" "$ROOT/dev" "$ROOT/tmp" "$ROOT/root" "$ROOT/run"
chmod 1777 "$ROOT/tmp"
cp "$BUSYBOX" "$ROOT/bin/busybox"
for app in $("$BUSYBOX" --list); do
    [ "$app" = busybox ] || ln -s busybox "$ROOT/bin/$app"
done
# Scripts written for a normal system call /usr/bin/env, /sbin/ip and so on.
ln -s ../bin "$ROOT/usr/bin"
ln -s ../bin "$ROOT/usr/sbin"
for app in $("$BUSYBOX" --list); do
    [ "$app" = busybox ] || ln -s ../bin/busybox "$ROOT/sbin/$app"
done

for m in $VIRTIO_CHAIN $E1000_CHAIN; do
    cp "$MODDIR/$m" "$ROOT/lib/nw-modules/"
done
for m in $VIRTIO_CHAIN; do basename "$m"; done | awk '!seen[$0]++' > "$ROOT/lib/nw-modules/virtio.order"
for m in $E1000_CHAIN; do basename "$m"; done | awk '!seen[$0]++' > "$ROOT/lib/nw-modules/e1000.order"

cp "$HERE/init" "$ROOT/init"
cp "$HERE/udhcpc.script" "$ROOT/etc/udhcpc.script"
cp "$HERE/nw.sh" "$ROOT/lib/nw.sh"
chmod 755 "$ROOT/init" "$ROOT/etc/udhcpc.script"
chmod 644 "$ROOT/lib/nw.sh"
echo "$KVER" > "$ROOT/etc/nw-kernel-version"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$ROOT/etc/passwd"
printf 'root:x:0:\n' > "$ROOT/etc/group"
printf '127.0.0.1 localhost\n' > "$ROOT/etc/hosts"

# Sorted names, owner 0:0 and mtime 0 make the archive depend only on its inputs.
(
    cd "$ROOT"
    find . -mindepth 1 -exec touch -h -d @0 {} +
    find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --renumber-inodes --ignore-devno --quiet | gzip -9 -n
) > "$OUT/.initramfs.tmp" || die "creating the initramfs failed"
# The kernel only looks for another (uncompressed) archive after this one at a
# 4-byte aligned offset; zero padding is skipped. Aligning here lets tests
# append their newc archive with a plain `cat`.
size=$(wc -c < "$OUT/.initramfs.tmp")
head -c $(( (4 - size % 4) % 4 )) /dev/zero >> "$OUT/.initramfs.tmp"
mv "$OUT/.initramfs.tmp" "$OUT/initramfs.cpio.gz"
# Hard links: the cache is in OUT, and vmlinux is about 65 MB.
rm -f "$OUT/vmlinuz" "$OUT/vmlinux"
ln "$KDIR/vmlinuz" "$OUT/vmlinuz" 2>/dev/null || cp "$KDIR/vmlinuz" "$OUT/vmlinuz"
if [ -f "$KDIR/vmlinux" ]; then
    ln "$KDIR/vmlinux" "$OUT/vmlinux" 2>/dev/null || cp "$KDIR/vmlinux" "$OUT/vmlinux"
fi
echo "$KVER" > "$OUT/kernel-version"
echo "$STAMP" > "$OUT/.stamp"

say "kernel:    $OUT/vmlinuz ($KVER)"
if [ -f "$OUT/vmlinux" ]; then
    say "           $OUT/vmlinux (uncompressed, PVH entry: the faster boot)"
fi
say "initramfs: $OUT/initramfs.cpio.gz ($(wc -c < "$OUT/initramfs.cpio.gz") bytes)"
say "virtio:    $(tr '\n' ' ' < "$ROOT/lib/nw-modules/virtio.order")"
say "e1000:     $(tr '\n' ' ' < "$ROOT/lib/nw-modules/e1000.order")"
