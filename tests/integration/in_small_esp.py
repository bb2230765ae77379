"""Run xen-boot-builder on a copy of an ESP that lives on a small tmpfs.

    in_small_esp.py SIZE_KIB ESP MOUNTPOINT -- TOOL ARGS...

In a private mount namespace (root, or an unprivileged user namespace): mount
a tmpfs of SIZE_KIB on the empty folder MOUNTPOINT, copy ESP into it, run
TOOL ARGS with `--esp MOUNTPOINT` put first, and print JSON with the exit
status, output, the tmpfs's free bytes, and snapshots of the copy before and
after. The tmpfs vanishes with this process, so everything the test needs to
see is in the JSON."""

import ctypes
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from common import snapshot_esp

CLONE_NEWNS, CLONE_NEWUSER = 0x00020000, 0x10000000
MS_REC, MS_PRIVATE = 0x4000, 0x40000


def enter_private_mount_namespace(libc):
    uid, gid = os.geteuid(), os.getegid()
    flags = CLONE_NEWNS if uid == 0 else CLONE_NEWNS | CLONE_NEWUSER
    if libc.unshare(flags) != 0:
        raise OSError(ctypes.get_errno(), "unshare")
    if uid != 0:
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
        Path("/proc/self/gid_map").write_text(f"0 {gid} 1")
    if libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), "mount --make-rprivate /")


def mount_tmpfs(libc, mountpoint, size_kib):
    options = f"size={size_kib}k".encode()
    if libc.mount(b"tmpfs", str(mountpoint).encode(), b"tmpfs", 0, options) != 0:
        raise OSError(ctypes.get_errno(), f"mount tmpfs on {mountpoint}")


def main(argv):
    size_kib, esp, mountpoint, separator, tool, *tool_args = argv
    if separator != "--":
        sys.exit("usage: in_small_esp.py SIZE_KIB ESP MOUNTPOINT -- TOOL ARGS...")
    libc = ctypes.CDLL(None, use_errno=True)
    enter_private_mount_namespace(libc)
    mount_tmpfs(libc, mountpoint, int(size_kib))
    shutil.copytree(esp, mountpoint, symlinks=True, dirs_exist_ok=True)
    before = snapshot_esp(mountpoint)
    free_before = shutil.disk_usage(mountpoint).free
    result = subprocess.run(
        [tool, "--esp", mountpoint, *tool_args], capture_output=True, text=True, check=False
    )
    print(
        json.dumps(
            {
                "returncode": result.returncode,
                "stdout": result.stdout,
                "stderr": result.stderr,
                "free_before": free_before,
                "before": before,
                "after": snapshot_esp(mountpoint),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
