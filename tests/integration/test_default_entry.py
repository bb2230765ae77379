"""What systemd-boot boots by default after a run (issue 8, spec 3.4 and 5):
a glob default is retargeted to Xen only when systemd-boot would then boot
the same generation, whichever the naming scheme; a loader.conf that is not
a regular file costs a warning, not the run (and `--no-default` does not
look at it); a boot counter that would wrap saturates."""

import os
import re
import unittest

from common import (
    ToolTestCase,
    copy_root,
    describe,
    make_root,
    make_template_root,
    run_bounded_on_root,
    snapshot_esp,
    warnings_of,
    xen_entry_files,
)

GENERATIONS = 3
LOADER_CONF = "loader/loader.conf"
MAX_COUNTER = 2**32 - 1  # the largest tries-left systemd-boot reads (32 bits)


def with_glob_default(loader_conf):
    """loader.conf with `default nixos-*` in place of its default line."""
    text, count = re.subn(r"(?m)^default .*$", "default nixos-*", loader_conf)
    if count != 1:
        raise AssertionError(f"no single default line in {loader_conf!r}")
    return text


class GlobDefault(ToolTestCase):
    """`default nixos-*` picks the newest generation (systemd-boot orders by
    version, newest first). When that generation gets no Xen entry, `xen-*`
    would boot an older one: the default must stay."""

    CASES = {
        ("generation", "broken bootspec"): ("--scheme", "generation", "--missing-bootspec", "3"),
        ("hash", "broken bootspec"): ("--scheme", "hash", "--missing-bootspec", "3"),
        ("generation", "no Xen"): ("--scheme", "generation", "--no-xen", "3"),
        ("hash", "no Xen"): ("--scheme", "hash", "--no-xen", "3"),
    }

    def test_glob_default_never_moves_to_an_older_generation(self):
        for (scheme, newest), options in self.CASES.items():
            with self.subTest(scheme=scheme, newest=newest):
                root = make_root(self, *options, "--generations", str(GENERATIONS))
                loader_conf = root.esp / LOADER_CONF
                loader_conf.write_text(with_glob_default(root.manifest["loader_conf"]))
                before = snapshot_esp(root.esp)[LOADER_CONF]
                result = run_bounded_on_root(root, "info")
                newest_entry = root.entry(GENERATIONS)
                if newest == "broken bootspec":
                    # The default generation got no Xen entry: the run fails (spec 5).
                    self.assertEqual(result.returncode, 1, describe(result))
                    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
                    self.assertTrue(any(f"nixos-{newest_entry['rest']}" in e for e in errors), describe(result))
                else:
                    self.assertEqual(result.returncode, 0, describe(result))
                self.assertEqual(snapshot_esp(root.esp)[LOADER_CONF], before, describe(result))
                older = [root.entry(n)["xen_entry"] for n in range(1, GENERATIONS)]
                self.assertEqual(xen_entry_files(root), sorted(older), describe(result))


class BareDefaultLine(ToolTestCase):
    def test_bare_default_line_is_skipped_as_systemd_boot_skips_it(self):
        # systemd-boot skips a loader.conf line without a value (its
        # line_get_key_value), so the default is the last default line that
        # has one: here the first generation, which gets no Xen entry.
        root = make_root(self, "--generations", str(GENERATIONS), "--missing-bootspec", "1")
        loader_conf = root.esp / LOADER_CONF
        loader_conf.write_text("timeout 5\ndefault nixos-generation-1.conf\ndefault\n")
        before = snapshot_esp(root.esp)[LOADER_CONF]
        result = run_bounded_on_root(root, "info")
        self.assertEqual(result.returncode, 1, describe(result))
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        self.assertTrue(any("nixos-generation-1" in e for e in errors), describe(result))
        self.assertEqual(xen_entry_files(root), ["xen-generation-2.conf", "xen-generation-3.conf"])
        self.assertEqual(snapshot_esp(root.esp)[LOADER_CONF], before)


class UnusableLoaderConf(ToolTestCase):
    @classmethod
    def setUpClass(cls):
        cls.template = make_template_root(cls, "--generations", str(GENERATIONS))

    def plant(self, root, kind):
        """Replace loader.conf by a symlink to a copy of it, or by a folder."""
        loader_conf = root.esp / LOADER_CONF
        loader_conf.unlink()
        if kind == "symlink":
            (root.esp / "loader/loader.conf.real").write_text(root.manifest["loader_conf"])
            loader_conf.symlink_to("loader.conf.real")
        else:
            loader_conf.mkdir()

    def test_unusable_loader_conf_costs_a_warning_not_the_entries(self):
        for kind in ("symlink", "folder"):
            for no_default in (False, True):
                with self.subTest(loader_conf=kind, no_default=no_default):
                    root = copy_root(self, self.template)
                    self.plant(root, kind)
                    before = snapshot_esp(root.esp)
                    options = ("--no-default",) if no_default else ()
                    result = run_bounded_on_root(root, *options, "info")
                    self.assertEqual(result.returncode, 0, describe(result))
                    self.assertEqual(
                        xen_entry_files(root), sorted(e["xen_entry"] for e in root.entries), describe(result)
                    )
                    if no_default:
                        self.assertEqual(warnings_of(result), [], describe(result))
                    else:
                        about = [w for w in warnings_of(result) if LOADER_CONF in w]
                        self.assertEqual(len(about), 1, describe(result))
                    loader_conf = root.esp / LOADER_CONF
                    if kind == "symlink":
                        self.assertEqual(os.readlink(loader_conf), "loader.conf.real")
                        self.assertEqual(
                            snapshot_esp(root.esp)["loader/loader.conf.real"], before["loader/loader.conf.real"]
                        )
                    else:
                        self.assertTrue(loader_conf.is_dir() and not loader_conf.is_symlink())
                        self.assertEqual(list(loader_conf.iterdir()), [])


class BootCounter(ToolTestCase):
    def test_counter_that_would_wrap_saturates(self):
        root = make_root(self, "--scheme", "hash", "--generations", "2", "--boot-counting", f"{MAX_COUNTER}-1")
        result = run_bounded_on_root(root, "info")
        self.assertEqual(result.returncode, 0, describe(result))
        self.assertEqual(
            xen_entry_files(root), sorted(f"xen-{e['rest']}+{MAX_COUNTER}.conf" for e in root.entries), describe(result)
        )


if __name__ == "__main__":
    unittest.main()
