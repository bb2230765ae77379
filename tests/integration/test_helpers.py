"""The programs the tool runs (issue 15: items 2, 3, 9, 10): the bootspec's
initrd secrets tool and sbsign, each with a time limit (--helper-timeout),
/dev/null as input and a process group of its own; SIGTERM during a build;
the private folder with the initrd copy and its secrets.

What it owes: a secrets tool that sleeps costs only its generation (old image
kept, the warning names the tool and says "timed out after N s"), the others
are built; a signer that sleeps stops the run as a failed one does; SIGTERM
during a build kills the tool with its group, leaves no private folder and
ends the run with one line and a non-zero status; a later run removes a stale
private folder but not one a live run holds; a secrets tool outside the store
is never run.
"""

import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

from common import (
    BINARY,
    ToolTestCase,
    build,
    copy_root,
    describe,
    rewrite_bootspec,
    snapshot_esp,
    tool_environment,
    warnings_of,
)
from test_lanzaboote import lanzaboote_template_with_keys

TOOL = "/nix/store/00000000000000000000000000000000-append-initrd-secrets/bin/append-initrd-secrets"


def process_gone(pid, wait=10):
    """Whether the process is gone (or a zombie nobody reaped), waiting a while."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


class Helpers(ToolTestCase):
    @classmethod
    def setUpClass(cls):
        [(cls.key, cls.cert)] = lanzaboote_template_with_keys(cls, "db")

    def setUp(self):
        super().setUp()
        self.tmp = Path(tempfile.mkdtemp(prefix="xbb-tmpdir-"))
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def signing(self):
        return ("--lanzaboote", "--sign-key", self.key, "--sign-cert", self.cert)

    def run_tool(self, root, *argv, path=None):
        env = tool_environment()
        env["TMPDIR"] = str(self.tmp)
        if path is not None:
            env["PATH"] = f"{path}:{env['PATH']}"
        return subprocess.run(
            [str(BINARY), "--root", str(root.path), "--esp", str(root.esp), *map(str, argv)],
            capture_output=True, text=True, env=env, timeout=300,
        )

    def secrets_tool(self, root, script, generation=1, tool=TOOL):
        """Gives generation `generation` an initrd secrets tool running `script`."""
        host = root.path / tool.lstrip("/") if not tool.startswith("/nix/store/") else root.store_path(tool)
        host.parent.mkdir(parents=True, exist_ok=True)
        host.write_text("#!/bin/sh\n" + script)
        host.chmod(0o555)
        rewrite_bootspec(root, root.entry(generation),
                         lambda spec: spec["org.nixos.bootspec.v1"].update(initrdSecrets=tool))

    def test_sleeping_secrets_tool_times_out_and_costs_only_its_generation(self):
        root = copy_root(self, self.template)
        build(self, root, "info", *self.signing())
        old, new = root.entry(1), root.entry(2)
        self.secrets_tool(root, "sleep 100\n")
        rewrite_bootspec(root, new, lambda spec: spec["org.xenproject.bootspec.v2"].update(params=["dom0_mem=2G"]))
        before = snapshot_esp(root.esp)
        start = time.monotonic()
        result = self.run_tool(root, *self.signing(), "--helper-timeout", "1", "info")
        self.assertLess(time.monotonic() - start, 30, "the sleeping tool held the run")
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertTrue(any(TOOL in w and "timed out after 1 s" in w for w in warnings_of(result)), describe(result))
        after = snapshot_esp(root.esp)
        old_image, new_image = f"EFI/xen/{old['xen_image']}", f"EFI/xen/{new['xen_image']}"
        self.assertEqual(after[old_image], before[old_image])
        self.assertNotEqual(after[new_image][2], before[new_image][2])

    def test_sleeping_signer_stops_the_run(self):
        root = copy_root(self, self.template)
        fake = self.tmp / "bin"
        fake.mkdir()
        (fake / "sbsign").write_text("#!/bin/sh\nsleep 100\n")
        (fake / "sbsign").chmod(0o755)
        before = snapshot_esp(root.esp)
        start = time.monotonic()
        result = self.run_tool(root, *self.signing(), "--helper-timeout", "1", "info", path=fake)
        self.assertLess(time.monotonic() - start, 60, "the sleeping signer held the run")
        self.assertEqual(result.returncode, 1, describe(result))
        self.assertIn("signing failed (sbsign, timed out after 1 s)", result.stderr, describe(result))
        self.assertFalse([p for p in snapshot_esp(root.esp) if p.startswith("EFI/xen/") and p not in before],
                         "an unsigned image went into place")

    def test_sigterm_mid_build_kills_the_tool_and_leaves_no_private_folder(self):
        root = copy_root(self, self.template)
        pids = self.tmp / "pids"
        pids.mkdir()
        self.secrets_tool(root, f"sleep 100 & echo $! > {pids}/child\necho $$ > {pids}/tool\nwait\n")
        env = tool_environment()
        env["TMPDIR"] = str(self.tmp)
        process = subprocess.Popen(
            [str(BINARY), "--root", str(root.path), "--esp", str(root.esp), *map(str, self.signing()), "default"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        try:
            deadline = time.monotonic() + 60
            while not ((pids / "tool").exists() and (pids / "child").exists()) and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertTrue((pids / "child").exists(), "the secrets tool never ran")
            time.sleep(0.2)
            self.assertEqual(list(self.tmp.glob("xen-boot-builder-*/initrd-0")).__len__(), 1)
            process.send_signal(signal.SIGTERM)
            stdout, stderr = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        result = f"exit {process.returncode}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        self.assertNotIn(process.returncode, (0, -signal.SIGTERM), result)
        self.assertEqual(stderr.strip().splitlines(), ["error: stopped by SIGTERM"], result)
        self.assertEqual(list(self.tmp.glob("xen-boot-builder-*")), [], "a private folder was left")
        for name in ("tool", "child"):
            self.assertTrue(process_gone(int((pids / name).read_text())), f"the {name} outlived the run")

    def test_stale_private_folder_removed_but_a_live_one_kept(self):
        root = copy_root(self, self.template)
        self.secrets_tool(root, "exit 0\n")
        stale, live = self.tmp / "xen-boot-builder-Stale1", self.tmp / "xen-boot-builder-Live12"
        for folder in (stale, live):
            folder.mkdir(mode=0o700)
            (folder / "initrd-0").write_bytes(b"secret")
            old = time.time() - 7200
            os.utime(folder, (old, old))
        held = os.open(live, os.O_RDONLY | os.O_DIRECTORY)
        self.addCleanup(os.close, held)
        fcntl.flock(held, fcntl.LOCK_EX)
        result = self.run_tool(root, *self.signing(), "info")
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertFalse(stale.exists(), "the stale private folder stayed")
        self.assertTrue((live / "initrd-0").exists(), "a live run's private folder was removed")
        self.assertEqual(sorted(self.tmp.glob("xen-boot-builder-*")), [live])

    def test_secrets_tool_outside_the_store_is_not_run(self):
        root = copy_root(self, self.template)
        marker = self.tmp / "ran"
        self.secrets_tool(root, f"touch {marker}\n", tool="/etc/xbb-secrets-tool")
        result = self.run_tool(root, *self.signing(), "info")
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertFalse(marker.exists(), "a secrets tool outside the store was run")
        self.assertTrue(any("/etc/xbb-secrets-tool" in w and "outside /nix/store" in w for w in warnings_of(result)),
                        describe(result))


if __name__ == "__main__":
    unittest.main()
