"""A hostile bootspec affects only its own generation (spec 3.2 and 5, issue
3): every bootspec field that reaches a Xen entry or image is fed a newline,
a carriage return plus a section header, a NUL, and (for arrays) a
non-string item. The generation is refused with a message naming it and the
field, and every other file on the ESP is byte-for-byte what a run on the
same tree without the injection makes."""

import re
import unittest

from common import (
    ToolTestCase,
    build,
    describe,
    make_root,
    rewrite_bootspec,
    snapshot_esp,
    without_record,
)

ROOT_OPTIONS = ("--generations", "3")
VICTIM = 2  # not the default generation: the run must still succeed
MARKER = "evil"

TEXT_PAYLOADS = {
    "newline": f"x\nkernel={MARKER}",
    "carriage return and section": f"x\r\n[{MARKER}]",
    "NUL": f"x\u0000{MARKER}",
}


def set_kernel_params(value):
    def change(document):
        document["org.nixos.bootspec.v1"]["kernelParams"] = ["quiet", value]

    return change


def set_xen_params(value):
    def change(document):
        document["org.xenproject.bootspec.v1"]["xenParams"] = ["dom0_mem=512M", value]
        document["org.xenproject.bootspec.v2"]["params"] = ["dom0_mem=512M", value]

    return change


def set_init(value):
    def change(document):
        document["org.nixos.bootspec.v1"]["init"] += value

    return change


def set_xen_image(value):
    def change(document):
        document["org.xenproject.bootspec.v1"]["xen"] += value
        document["org.xenproject.bootspec.v2"]["efiPath"] += value

    return change


# field as the bootspec names it -> how to inject a value into it. The Xen
# fields are set in v1 and v2 alike; v2 is the one read, so messages name
# v2's keys.
FIELDS = {
    "kernelParams": set_kernel_params,
    "params": set_xen_params,
    "init": set_init,
    "efiPath": set_xen_image,
}
ARRAY_FIELDS = {"kernelParams": set_kernel_params, "params": set_xen_params}


def names_field(message, field):
    """The message names the key itself (not a longer key containing it)."""
    return re.search(rf"(?<![A-Za-z]){field}(?![A-Za-z])", message) is not None


def files_not_of(snapshot, stem):
    """Contents of the files whose names do not hold `stem`, but the record,
    which differs between ESPs built at different times."""
    return {
        path: state[2]
        for path, state in without_record(snapshot).items()
        if stem not in path.rsplit("/", 1)[-1]
    }


class HostileBootspec(ToolTestCase):
    def reference_contents(self):
        root = make_root(self, *ROOT_OPTIONS)
        build(self, root)
        return files_not_of(snapshot_esp(root.esp), f"generation-{VICTIM}")

    def assert_only_victim_refused(self, field, change, reference):
        root = make_root(self, *ROOT_OPTIONS)
        victim = root.entry(VICTIM)
        rewrite_bootspec(root, victim, change)
        result = build(self, root)
        self.assertTrue(names_field(result.stderr, field), describe(result))
        self.assertTrue(
            f"generation-{VICTIM}" in result.stderr or victim["toplevel"] in result.stderr, describe(result)
        )
        after = snapshot_esp(root.esp)
        self.assertNotIn(f"loader/entries/{victim['xen_entry']}", after)
        self.assertNotIn(f"EFI/xen/{victim['xen_image']}", after)
        self.assertEqual(files_not_of(after, f"generation-{VICTIM}"), reference)
        for path in after:
            if path.startswith(("EFI/xen/", "loader/entries/xen-")) or path == "loader/loader.conf":
                self.assertNotIn(MARKER.encode(), (root.esp / path).read_bytes(), path)

    def test_text_injections_refuse_only_their_generation(self):
        reference = self.reference_contents()
        for field, setter in FIELDS.items():
            for kind, payload in TEXT_PAYLOADS.items():
                with self.subTest(field=field, payload=kind):
                    self.assert_only_victim_refused(field, setter(payload), reference)

    def test_non_string_array_items_refuse_only_their_generation(self):
        reference = self.reference_contents()
        for field, setter in ARRAY_FIELDS.items():
            for item in (42, None, ["nested"]):
                with self.subTest(field=field, item=item):
                    self.assert_only_victim_refused(field, setter(item), reference)


if __name__ == "__main__":
    unittest.main()
