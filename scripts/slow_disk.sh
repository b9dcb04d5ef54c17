#!/usr/bin/env bash
# A slow disk for benchmarks: an ext4 file system on a loop device whose writes are throttled to
# MB_PER_S (default 300), as on the virtual disks where durable saves were once slow.
#
#   sudo bash scripts/slow_disk.sh up [MB_PER_S]   # mounts it at /mnt/ckpt-slow
#   CKPT_BENCH_DIR=/mnt/ckpt-slow make bench       # or CKPT_BENCH_ONLY=durable .../ckpt-bench
#   sudo bash scripts/slow_disk.sh down
#
# The backing file lives in /dev/shm, so the limit, not the host's disk, sets the speed. A second
# loop device with direct I/O in front gives it a bounded request queue like a real disk's. The
# limit goes on the root blkio cgroup (cgroup v1), where flusher writeback is charged; with cgroup
# v2 it goes on io.max of the root's io controller where that is enabled.
set -euo pipefail
mount_point=/mnt/ckpt-slow
image=/dev/shm/ckpt-slow.img
state=/dev/shm/ckpt-slow.state

limit() {  # MAJ:MIN BYTES_PER_S (0 removes)
    if [ -w /sys/fs/cgroup/blkio/blkio.throttle.write_bps_device ]; then
        echo "$1 $2" > /sys/fs/cgroup/blkio/blkio.throttle.write_bps_device
    elif [ -w /sys/fs/cgroup/io.max ]; then
        if [ "$2" = 0 ]; then echo "$1 wbps=max" > /sys/fs/cgroup/io.max; else echo "$1 wbps=$2" > /sys/fs/cgroup/io.max; fi
    else
        echo "slow_disk: no blkio (cgroup v1) or io.max (cgroup v2) to throttle with" >&2
        return 1
    fi
}

case "${1:-}" in
up)
    rate=$(( ${2:-300} * 1024 * 1024 ))
    truncate -s 8G "$image"
    backing=$(losetup --find --show "$image")
    numbers=$(lsblk -dno MAJ:MIN "$backing" | tr -d ' ')
    limit "$numbers" "$rate"
    front=$(losetup --find --show --direct-io=on "$backing")
    mkfs.ext4 -q -F "$front"
    mkdir -p "$mount_point"
    mount "$front" "$mount_point"
    echo "$backing $front $numbers" > "$state"
    echo "slow disk at $mount_point: writes limited to ${2:-300} MB/s"
    ;;
down)
    read -r backing front numbers < "$state"
    umount "$mount_point"
    losetup -d "$front"
    limit "$numbers" 0
    losetup -d "$backing"
    rmdir "$mount_point"
    rm -f "$image" "$state"
    ;;
*)
    echo "usage: $0 up [MB_PER_S] | down" >&2
    exit 2
    ;;
esac
