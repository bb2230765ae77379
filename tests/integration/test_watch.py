"""`xen-boot-builder watch`, the daemon, on generated roots: it tells systemd
it is ready and what each run did, builds when generations come and go,
rebuilds on SIGHUP, finishes its run and exits 0 on SIGTERM, keeps the
watchdog fed while a run waits for the ESP lock, survives its folders going
and coming back, retries a failed run with a growing wait, and a burst of
profile links costs a handful of runs."""

import fcntl
import os
import re
import shutil
import signal
import subprocess
import unittest

from common import ToolTestCase, make_root, make_template_root, copy_root, xen_entry_files
from daemon import DEBOUNCE_MS, PROFILES, Daemon, Generation, KeepWriting, profile_link, watch_argv

class Watch(ToolTestCase):
    @classmethod
    def setUpClass(cls):
        # Generation 2 is the default, so that taking generation 3 away
        # leaves loader.conf's default in place.
        cls.template = make_template_root(cls, "--generations", "3", "--default", "2")

    def start(self, root, *options, env=None, debounce=DEBOUNCE_MS):
        daemon = Daemon(self, watch_argv(root, *options, debounce=debounce), env=env)
        daemon.wait_ready()
        return daemon

    def xen_stems(self, root):
        return {name.removesuffix(".conf") for name in xen_entry_files(root)}

    def test_ready_after_the_first_run_which_built_every_entry(self):
        root = copy_root(self, self.template)
        daemon = self.start(root)
        self.assertEqual(self.xen_stems(root), {"xen-generation-1", "xen-generation-2", "xen-generation-3"})
        ready = next(message for message in daemon.messages if "READY=1" in message)
        self.assertIn(
            "STATUS=3 added: +xen-generation-1 +xen-generation-2 +xen-generation-3 (3 Xen entries)",
            ready,
            daemon.describe(),
        )
        self.assertEqual(daemon.stop(), 0, daemon.describe())

    def test_a_new_generation_gets_its_xen_entry(self):
        root = copy_root(self, self.template)
        third = Generation(root, 3).take()
        daemon = self.start(root)
        self.assertEqual(self.xen_stems(root), {"xen-generation-1", "xen-generation-2"})
        before = len(daemon.statuses())
        third.put_back()
        status = daemon.wait_status(before, "the new generation", lambda s: "+xen-generation-3" in s)
        self.assertEqual(status, "1 added: +xen-generation-3 (3 Xen entries)")
        self.assertIn("xen-generation-3", self.xen_stems(root))
        self.assertTrue((root.esp / "EFI/xen/xen-generation-3.efi").is_file())
        self.assertEqual(daemon.stop(), 0, daemon.describe())

    def test_a_garbage_collected_generation_loses_its_xen_entry(self):
        root = copy_root(self, self.template)
        daemon = self.start(root)
        before = len(daemon.statuses())
        Generation(root, 1).take()
        status = daemon.wait_status(before, "the removal", lambda s: "-xen-generation-1" in s)
        self.assertEqual(status, "1 removed: -xen-generation-1 (2 Xen entries)")
        self.assertEqual(self.xen_stems(root), {"xen-generation-2", "xen-generation-3"})
        self.assertFalse((root.esp / "EFI/xen/xen-generation-1.efi").exists())
        self.assertEqual(daemon.stop(), 0, daemon.describe())

    def test_sighup_rebuilds_at_once(self):
        root = copy_root(self, self.template)
        # A quiet period no test waits for: only SIGHUP can start the run.
        daemon = self.start(root, debounce=3_600_000)
        image = root.esp / "EFI/xen/xen-generation-2.efi"
        image.unlink()  # EFI/xen is not watched
        before = len(daemon.statuses())
        daemon.signal(signal.SIGHUP)
        status = daemon.wait_status(before, "the SIGHUP run")
        self.assertEqual(status, "1 changed: ~xen-generation-2 (xen image) (3 Xen entries)")
        self.assertTrue(image.is_file())
        self.assertEqual(daemon.stop(), 0, daemon.describe())

    def test_sigterm_exits_0_and_says_it_stops(self):
        root = copy_root(self, self.template)
        daemon = self.start(root)
        self.assertEqual(daemon.stop(), 0, daemon.describe())
        self.assertIn("1", daemon.values("STOPPING"))
        self.assertTrue(daemon.log().endswith("stopping on SIGTERM\n"), daemon.describe())

    def test_sigterm_during_a_run_waiting_for_the_lock_finishes_the_run_first(self):
        root = copy_root(self, self.template)
        # Pings every 0.5 s; the run below waits for the lock as long as the
        # test holds it.
        daemon = self.start(root, env={"WATCHDOG_USEC": "1000000"}, debounce=3_600_000)
        image = root.esp / "EFI/xen/xen-generation-2.efi"
        image.unlink()
        lock = os.open(root.esp, os.O_RDONLY | os.O_DIRECTORY)
        self.addCleanup(os.close, lock)
        fcntl.flock(lock, fcntl.LOCK_EX)
        before = len(daemon.statuses())
        daemon.signal(signal.SIGHUP)
        daemon.wait_for("the wait for the lock", lambda: "warning: waiting for the lock on" in daemon.log())
        # The watchdog is fed while the run waits.
        pings = len(daemon.values("WATCHDOG"))
        daemon.wait_for("watchdog pings during the wait", lambda: len(daemon.values("WATCHDOG")) >= pings + 3)
        self.assertEqual(daemon.statuses()[before:], [], "the run ended while the lock was held")
        daemon.signal(signal.SIGTERM)
        fcntl.flock(lock, fcntl.LOCK_UN)
        self.assertEqual(daemon.process.wait(timeout=30), 0, daemon.describe())
        self.assertEqual(daemon.statuses()[before:], ["1 changed: ~xen-generation-2 (xen image) (3 Xen entries)"])
        self.assertTrue(image.is_file())

    def test_an_esp_that_goes_is_retried_with_a_growing_wait_and_watched_again_when_back(self):
        root = copy_root(self, self.template)
        third = Generation(root, 3).take()
        daemon = self.start(root)
        away = root.path / "boot.away"
        before = len(daemon.statuses())
        root.esp.rename(away)
        failed = lambda s: s.startswith("error: run failed (esp-missing): ")
        first = daemon.wait_status(before, "a failed run", failed)
        self.assertTrue(first.endswith("; next try in 1 s"), first)
        second = daemon.wait_status(before + 1, "a retry", failed)
        self.assertTrue(second.endswith("; next try in 2 s"), second)
        self.assertIn("error: run failed (esp-missing)", daemon.log())
        away.rename(root.esp)
        back = daemon.wait_status(before + 2, "a run on the ESP that came back", lambda s: not failed(s))
        self.assertEqual(back, "no change (2 Xen entries)")
        # Its loader/entries is watched again.
        count = len(daemon.statuses())
        third.put_back()
        daemon.wait_status(count, "the new generation", lambda s: "+xen-generation-3" in s)
        self.assertEqual(daemon.stop(), 0, daemon.describe())

    def test_an_esp_unmounted_is_not_built_on_and_an_esp_mounted_again_or_over_is_watched(self):
        self.assertEqual(os.geteuid(), 0, "this test mounts tmpfs file systems")
        root = copy_root(self, self.template)
        third = Generation(root, 3).take()
        content = root.path / "esp-content"
        root.esp.rename(content)
        root.esp.mkdir()
        staging = root.path / "staging"
        staging.mkdir()

        def mount_esp():
            # Filled before it appears at the ESP's path, as a mount does.
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "xbb-esp", staging], check=True)
            shutil.copytree(content, staging, symlinks=True, dirs_exist_ok=True)
            subprocess.run(["mount", "--move", staging, root.esp], check=True)

        mount_esp()
        self.addCleanup(lambda: os.path.ismount(root.esp) and subprocess.run(["umount", root.esp], check=False))
        daemon = self.start(root)
        shutil.rmtree(content)
        shutil.copytree(root.esp, content, symlinks=True)
        before = len(daemon.statuses())
        subprocess.run(["umount", root.esp], check=True)
        status = daemon.wait_status(before, "a run after the unmount")
        self.assertEqual(
            status,
            f"error: run failed (esp-missing): {root.esp}: no loader/ folder: not an ESP, or the ESP is "
            "not mounted; next try in 1 s",
        )
        self.assertEqual(list(root.esp.iterdir()), [], "it wrote into the mount point")
        # Generation 3 comes while the ESP is away; its entry is on the ESP
        # mounted again.
        os.symlink(third.target, third.link)
        (content / "loader/entries" / third.entry.name).write_text(third.text)
        count = len(daemon.statuses())
        mount_esp()
        status = daemon.wait_status(count, "a run on the ESP mounted again", lambda s: not s.startswith("error"))
        self.assertEqual(status, "1 added: +xen-generation-3 (3 Xen entries)")
        # Another file system mounted over it, where systemd-boot's entry of
        # generation 1 is gone: no inotify event tells, the mount table does.
        daemon.wait_quiet(3 * DEBOUNCE_MS / 1000)
        shutil.rmtree(content)
        shutil.copytree(root.esp, content, symlinks=True)
        (content / "loader/entries" / root.entry(1)["entry"]).unlink()
        count = len(daemon.statuses())
        mount_esp()
        self.addCleanup(lambda: os.path.ismount(root.esp) and subprocess.run(["umount", root.esp], check=False))
        status = daemon.wait_status(count, "a run on the ESP mounted over")
        self.assertEqual(status, "1 removed: -xen-generation-1 (2 Xen entries)")
        self.assertEqual(daemon.stop(), 0, daemon.describe())

    def test_an_entries_folder_removed_and_made_again_is_watched_again(self):
        root = copy_root(self, self.template)
        third = Generation(root, 3).take()
        daemon = self.start(root)
        entries = root.esp / "loader/entries"
        saved = {path.name: path.read_text() for path in entries.iterdir()}
        before = len(daemon.statuses())
        shutil.rmtree(entries)
        daemon.wait_status(before, "a run after loader/entries went")
        daemon.wait_quiet(3 * DEBOUNCE_MS / 1000)
        entries.mkdir()
        for name, text in saved.items():
            (entries / name).write_text(text)
        count = len(daemon.statuses())
        third.put_back()
        daemon.wait_status(count, "the new generation", lambda s: "+xen-generation-3" in s)
        self.assertEqual(self.xen_stems(root), {"xen-generation-1", "xen-generation-2", "xen-generation-3"})
        self.assertEqual(daemon.stop(), 0, daemon.describe())

    def test_a_writer_that_never_rests_postpones_a_build_no_longer_than_debounce_max(self):
        root = copy_root(self, self.template)
        third = Generation(root, 3).take()
        daemon = self.start(root, "--debounce-max", "2000", debounce=1000)
        before = len(daemon.statuses())
        with KeepWriting(root.esp / "loader/entries/other.conf", every=0.2) as writer:
            third.put_back()
            daemon.wait_status(before, "the new generation's run", lambda s: "+xen-generation-3" in s)
            writes = writer.writes
            # Built while the writer went on: at most about debounce-max after
            # the first change, far before the test's deadline.
            self.assertLess(writes, 5 / 0.2, daemon.describe())
        self.assertIn("xen-generation-3", self.xen_stems(root))
        self.assertEqual(daemon.stop(), 0, daemon.describe())

    def test_a_burst_of_1000_profile_links_costs_a_handful_of_runs(self):
        root = copy_root(self, self.template)
        daemon = self.start(root)
        before = len(daemon.statuses())
        target = os.readlink(profile_link(root, 1))
        for number in range(100, 1100):
            os.symlink(target, profile_link(root, number))
        daemon.wait_status(before, "a run after the burst")
        daemon.wait_quiet(5 * DEBOUNCE_MS / 1000)
        runs = daemon.statuses()[before:]
        self.assertLessEqual(len(runs), 3, daemon.describe())
        self.assertEqual(runs[-1], "no change (3 Xen entries)")
        self.assertEqual(daemon.stop(), 0, daemon.describe())


class WatchProfiles(ToolTestCase):
    def test_a_system_profiles_folder_made_later_is_watched(self):
        root = make_root(self, "--scheme", "lanzaboote", "--generations", "1", "--profile", "work")
        folder = root.path / PROFILES / "system-profiles"
        away = root.path / "system-profiles.away"
        folder.rename(away)
        daemon = Daemon(self, watch_argv(root, "--source", "profiles"))
        daemon.wait_ready()
        self.assertEqual(daemon.statuses(), ["1 added: +xen-generation-1 (1 Xen entry)"])
        before = len(daemon.statuses())
        folder.mkdir()
        for link in sorted(away.iterdir()):
            os.symlink(os.readlink(link), folder / link.name)
        status = daemon.wait_status(before, "the new profile's generations", lambda s: "work" in s)
        self.assertEqual(
            status, "2 added: +xen-work-generation-1 +xen-work-generation-2 (3 Xen entries)"
        )
        self.assertEqual(daemon.stop(), 0, daemon.describe())


class WatchLog(ToolTestCase):
    def test_lines_carry_journal_priorities_only_when_stderr_is_the_journal(self):
        root = make_root(self, "--generations", "2", "--missing-bootspec", "1")
        plain = Daemon(self, watch_argv(root))
        plain.wait_ready()
        self.assertEqual(plain.stop(), 0, plain.describe())
        self.assertNotRegex(plain.log(), r"(?m)^<\d>")

        journal = Daemon(self, watch_argv(root), journal=True)
        journal.wait_ready()
        self.assertEqual(journal.stop(), 0, journal.describe())
        lines = journal.log().splitlines()
        self.assertIn("<4>warning: nixos-generation-1: skipped: ", "\n".join(lines))
        self.assertIn("<6>no change (1 Xen entry)", lines)
        self.assertIn("<6>stopping on SIGTERM", lines)
        self.assertTrue(all(re.match(r"<[3-7]>", line) for line in lines), lines)

    def test_a_run_that_fails_is_logged_as_an_error(self):
        root = make_root(self, "--generations", "1")
        shutil.rmtree(root.esp)
        journal = Daemon(self, watch_argv(root), journal=True)
        journal.wait_ready()
        self.assertEqual(journal.stop(), 0, journal.describe())
        self.assertRegex(
            journal.log(), r"(?m)^<3>error: run failed \(esp-missing\): .*boot: cannot open the ESP: "
        )


    def test_a_daemon_that_cannot_watch_says_why_with_the_error_it_got(self):
        root = make_root(self, "--generations", "1")
        # Room for the libraries at start and one more descriptor (the
        # signalfd): inotify_init1 gets EMFILE.
        daemon = Daemon(self, watch_argv(root), rlimit_nofile=4)
        self.assertEqual(daemon.process.wait(timeout=30), 1, daemon.describe())
        self.assertEqual(daemon.log(), "error: watch: inotify_init1: Too many open files\n")


if __name__ == "__main__":
    unittest.main()
