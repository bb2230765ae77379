"""The daemon under the sandbox of systemd/xen-boot-builder.service, as
closely as a machine without systemd as PID 1 allows. systemd-run is not
usable here, so the settings of systemd/sandbox.conf are reproduced with:

- bubblewrap (namespaces and mounts): the whole tree read-only
  (ProtectSystem=strict) but the ESP (ReadWritePaths=/boot; the test's ESP
  stands for /boot), empty /tmp, /var/tmp (PrivateTmp), /home and /root
  (ProtectHome), a minimal /dev (PrivateDevices), /proc with /proc/sys
  read-only (ProtectKernelTunables), no network (PrivateNetwork), its own
  hostname (ProtectHostname);
- setpriv: no capability, not even in the bounding set
  (CapabilityBoundingSet=), and no_new_privs (NoNewPrivileges);
- syscall_filter (libseccomp, syscall_filter.c): SystemCallFilter= with the
  system call sets expanded by this machine's `systemd-analyze
  syscall-filter`, failing with EPERM (SystemCallErrorNumber=),
  SystemCallArchitectures=native, RestrictAddressFamilies=AF_UNIX,
  RestrictNamespaces=yes, MemoryDenyWriteExecute=yes;
- the process's umask (UMask=0077).

Not reproduced (NOT_REPRODUCED says why for each): ProtectProc=invisible and
ProcSubset=pid (this /proc shows every process and /proc/locks, so a message
about the ESP lock can name its holder, which under the unit it cannot),
ProtectKernelModules, ProtectKernelLogs, ProtectClock (covered in part by
the missing capabilities and the filtered system calls), LockPersonality,
RestrictRealtime, RestrictSUIDSGID. A setting added to sandbox.conf fails
the test until it is listed in one of the two tables.

The daemon is the real binary; it is told it runs under systemd by
NOTIFY_SOCKET and WATCHDOG_USEC, and its notification socket is reached
through a read-only mount, from a network namespace of its own, as under
the unit."""

import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import unittest
from pathlib import Path

from common import (
    BINARY,
    RECORD,
    SOURCE_DIR,
    ToolTestCase,
    copy_root,
    make_template_root,
    run_on_root,
    snapshot_esp,
    xen_entry_files,
)
from daemon import DEADLINE, Daemon, Generation, watch_argv

SANDBOX_CONF = SOURCE_DIR / "systemd" / "sandbox.conf"
SYSCALL_FILTER = Path(os.environ.get("XBB_SYSCALL_FILTER", SOURCE_DIR / "build/tests/syscall_filter"))

# Setting: the value the emulation below assumes (None: any).
REPRODUCED = {
    "CapabilityBoundingSet": "",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ReadWritePaths": "/boot",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "PrivateNetwork": "yes",
    "RestrictAddressFamilies": "AF_UNIX",
    "ProtectKernelTunables": "yes",
    "ProtectControlGroups": "yes",  # /sys/fs/cgroup is read-only with the rest
    "ProtectHostname": "yes",
    "RestrictNamespaces": "yes",
    "MemoryDenyWriteExecute": "yes",
    "SystemCallArchitectures": "native",
    "SystemCallFilter": None,
    "SystemCallErrorNumber": "EPERM",
    "UMask": "0077",
}
NOT_REPRODUCED = {
    "ProtectProc": "needs /proc mounted with hidepid=invisible, which bubblewrap does not do",
    "ProcSubset": "needs /proc mounted with subset=pid: /proc/locks is readable here",
    "ProtectKernelModules": "no CAP_SYS_MODULE and @module filtered; /usr/lib/modules stays visible",
    "ProtectKernelLogs": "no CAP_SYSLOG and no /dev/kmsg; /proc/kmsg stays visible",
    "ProtectClock": "@clock is filtered out (in @privileged); /dev/rtc is absent",
    "LockPersonality": "personality() is not filtered",
    "RestrictRealtime": "sched_setscheduler() is not filtered",
    "RestrictSUIDSGID": "chmod() with S_ISUID is not filtered (no capability to use it)",
}


def unit_settings():
    """sandbox.conf as [(key, value)], in order."""
    settings = []
    for line in SANDBOX_CONF.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.append((key, value))
    return settings


def syscall_sets():
    """{"@set": [names and @sets]} from `systemd-analyze syscall-filter`."""
    result = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True, check=True)
    sets, current = {}, None
    for line in result.stdout.splitlines():
        if line.startswith("@"):
            current = sets.setdefault(line.split()[0], [])
        elif line.startswith("    ") and not line.strip().startswith("#") and current is not None:
            current.append(line.strip())
        elif not line.strip():
            current = None
    return sets


def allowed_syscalls(filters):
    """What the unit's SystemCallFilter= lines allow: the first an allow-list,
    each later `~` one taking system calls away, as systemd reads them."""
    sets = syscall_sets()

    def expand(items):
        names = set()
        for item in items:
            names |= expand(sets[item]) if item.startswith("@") else {item}
        return names

    assert not filters[0].startswith("~"), f"SystemCallFilter={filters[0]}: expected an allow-list first"
    allowed = expand(["@default", *filters[0].split()])
    for value in filters[1:]:
        assert value.startswith("~"), f"SystemCallFilter={value}: expected a deny-list after the allow-list"
        allowed -= expand(value[1:].split())
    return allowed


class SandboxedDaemon(Daemon):
    """The daemon under the unit's sandbox (see the module's docstring), with
    the system calls `allowed`."""

    def __init__(self, test, root, allowed, *options, env=None):
        folder = Path(tempfile.mkdtemp(prefix="xbb-sandbox-"))
        test.addCleanup(shutil.rmtree, folder, ignore_errors=True)
        allow_list = folder / "allowed-syscalls"
        allow_list.write_text("".join(name + "\n" for name in sorted(allowed)))
        self.read_info, write_info = os.pipe()

        def sandbox(socket_folder):
            return [
                "bwrap",
                "--die-with-parent",
                "--unshare-net",
                "--unshare-uts",
                "--unshare-ipc",
                "--ro-bind", "/", "/",
                "--dev", "/dev",
                "--proc", "/proc",
                "--tmpfs", "/tmp",
                "--tmpfs", "/var/tmp",
                "--tmpfs", "/home",
                "--tmpfs", "/root",
                # The program and the filter stay visible where the build put
                # them, also when that is under one of the folders made empty.
                "--ro-bind", str(BINARY), str(BINARY),
                "--ro-bind", str(SYSCALL_FILTER), str(SYSCALL_FILTER),
                "--ro-bind", str(root.path), str(root.path),
                "--bind", str(root.esp), str(root.esp),
                "--ro-bind", str(folder), str(folder),
                "--ro-bind", str(socket_folder), str(socket_folder),
                "--info-fd", str(write_info),
                "--",
                "setpriv", "--no-new-privs", "--bounding-set=-all", "--inh-caps=-all", "--",
                str(SYSCALL_FILTER), str(allow_list),
            ]  # fmt: skip

        super().__init__(
            test, watch_argv(root, *options), env=env, prefix=sandbox, pass_fds=(write_info,), umask=0o077
        )
        os.close(write_info)
        self.pid = self.child_pid()

    def child_pid(self):
        """The sandboxed process (bwrap's child, which becomes the daemon),
        from what bwrap writes on --info-fd and closes."""
        data = b""
        while True:
            ready, _, _ = select.select([self.read_info], [], [], DEADLINE)
            if not ready:
                self.test.fail(f"bwrap said nothing on --info-fd\n{self.describe()}")
            chunk = os.read(self.read_info, 4096)
            if not chunk:
                break
            data += chunk
        os.close(self.read_info)
        return json.loads(data)["child-pid"]


class WatchSandboxed(ToolTestCase):
    @classmethod
    def setUpClass(cls):
        cls.template = make_template_root(cls, "--generations", "3", "--default", "2")
        settings = unit_settings()
        cls.settings = settings
        cls.allowed = allowed_syscalls([value for key, value in settings if key == "SystemCallFilter"])

    def setUp(self):
        super().setUp()
        self.assertEqual(os.geteuid(), 0, "bubblewrap's mounts and setpriv's bounding set need root")
        self.assertTrue(SYSCALL_FILTER.is_file(), f"missing {SYSCALL_FILTER} (build the tests)")

    def test_every_setting_of_the_unit_is_reproduced_or_said_not_to_be(self):
        keys = {key for key, _ in self.settings}
        self.assertEqual(keys, set(REPRODUCED) | set(NOT_REPRODUCED))
        self.assertEqual(set(REPRODUCED) & set(NOT_REPRODUCED), set())
        for key, value in self.settings:
            if REPRODUCED.get(key) is not None:
                self.assertEqual(value, REPRODUCED[key], f"{key}= changed: the sandbox here assumes {REPRODUCED[key]}")

    def test_the_daemon_runs_under_the_sandbox(self):
        root = copy_root(self, self.template)
        daemon = SandboxedDaemon(self, root, self.allowed, env={"WATCHDOG_USEC": "2000000"})
        daemon.wait_ready()
        status = Path(f"/proc/{daemon.pid}/status").read_text()
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        self.assertTrue(fields["Name"].startswith("xen-boot-build"), fields["Name"])
        for key, value in [("CapEff", "0" * 16), ("CapPrm", "0" * 16), ("CapBnd", "0" * 16),
                           ("NoNewPrivs", "1"), ("Seccomp", "2"), ("Seccomp_filters", "4"),
                           ("Umask", "0077")]:  # fmt: skip
            self.assertEqual(fields[key].strip(), value, key)
        self.assertNotEqual(os.readlink(f"/proc/{daemon.pid}/ns/net"), os.readlink("/proc/self/ns/net"))
        mounts = {}
        for line in Path(f"/proc/{daemon.pid}/mountinfo").read_text().splitlines():
            fields = line.split()
            mounts[fields[4]] = fields[5].split(",")
        self.assertIn("ro", mounts[str(root.path)])
        self.assertIn("rw", mounts[str(root.esp)])
        self.assertIn("ro", mounts["/"])

        self.assertEqual(xen_entry_files(root), [f"xen-generation-{n}.conf" for n in (1, 2, 3)])
        entry = root.esp / "loader/entries/xen-generation-1.conf"
        self.assertEqual(entry.stat().st_mode & 0o777, 0o600, "UMask=0077")

        # A generation garbage-collected and one added, SIGHUP and SIGTERM.
        before = len(daemon.statuses())
        third = Generation(root, 3).take()
        daemon.wait_status(before, "the removal", lambda s: "-xen-generation-3" in s)
        before = len(daemon.statuses())
        third.put_back()
        status = daemon.wait_status(before, "the new generation", lambda s: "+xen-generation-3" in s)
        self.assertEqual(status, "1 added: +xen-generation-3 (3 Xen entries)")
        (root.esp / "EFI/xen/xen-generation-2.efi").unlink()
        before = len(daemon.statuses())
        daemon.signal(signal.SIGHUP)
        self.assertEqual(daemon.wait_status(before, "the SIGHUP run"), "1 changed: ~xen-generation-2 (xen image) (3 Xen entries)")
        self.assertIn("1", daemon.values("WATCHDOG"))
        self.assertEqual(daemon.stop(), 0, daemon.describe())
        self.assertIn("1", daemon.values("STOPPING"))

    def test_store_paths_resolve_alike_where_openat2_is_filtered_out(self):
        # Issue 18: store paths are found with one openat2 call each, and as
        # before (a stat per component) where a filter refuses it with EPERM:
        # the same ESP either way, with the xen.efi reached through a symlink
        # (which openat2 does not follow) and the rest straight.
        def prepared():
            root = copy_root(self, self.template)
            xen_efi = root.store_path(root.entry(1)["xen_efi"])
            folder = xen_efi.parents[1]
            folder.rename(folder.with_name(folder.name + "-real"))
            folder.symlink_to("/nix/store/" + folder.name + "-real")
            return root

        def esp_of(root):
            files = {path: state[2] for path, state in snapshot_esp(root.esp).items() if path != RECORD}
            record = json.loads((root.esp / RECORD).read_text())
            prefix = str(root.path)
            sources = sorted(path.removeprefix(prefix) for path in record["sources"])
            bootspecs = {
                toplevel: [known.get(key, "").removeprefix(prefix) for key in ("file", "xen_efi", "kernel", "initrd")]
                for toplevel, known in record["bootspecs"].items()
            }
            return files, sources, bootspecs

        plain = prepared()
        result = run_on_root(plain, "--layout", "auto", "quiet")
        self.assertEqual(result.returncode, 0, result.stderr)
        filtered = prepared()
        folder = Path(tempfile.mkdtemp(prefix="xbb-filter-"))
        self.addCleanup(shutil.rmtree, folder, ignore_errors=True)
        allow_list = folder / "allowed-syscalls"
        allow_list.write_text("".join(name + "\n" for name in sorted(self.allowed - {"openat2"})))
        argv = ["setpriv", "--no-new-privs", "--", str(SYSCALL_FILTER), str(allow_list), str(BINARY),
                "--root", str(filtered.path), "--esp", str(filtered.esp), "--layout", "auto", "quiet"]  # fmt: skip
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
        self.assertEqual(result.returncode, 0, result.stderr)
        expected = esp_of(plain)
        xen_efi = plain.entry(1)["xen_efi"]
        folder_name = xen_efi.split("/")[3]
        self.assertEqual(expected[1], [xen_efi.replace(folder_name, folder_name + "-real", 1)])
        self.assertEqual(esp_of(filtered), expected)

    def test_the_filter_bites(self):
        # The control: the same sandbox without inotify_init1 in the
        # allow-list, and the daemon cannot start, with the unit's EPERM.
        root = copy_root(self, self.template)
        daemon = SandboxedDaemon(self, root, self.allowed - {"inotify_init1"})
        self.assertEqual(daemon.process.wait(timeout=DEADLINE), 1, daemon.describe())
        self.assertEqual(daemon.log(), "error: watch: inotify_init1: Operation not permitted\n")
        self.assertEqual(daemon.values("READY"), [])


if __name__ == "__main__":
    unittest.main()
