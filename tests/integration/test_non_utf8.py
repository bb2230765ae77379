"""Bytes that are not UTF-8 (a Latin-1 root, a store path, an entry's init=, a
PE section name) in what the tool prints as JSON and keeps in its record:
no command crashes on them (issue 15, item 1); each such byte is written
\\xNN, as messages write bytes they cannot print, and the rest stays as it is."""

import json
import os
import shutil
import struct
import tempfile
import unittest
from pathlib import Path

from common import (
    RECORD,
    XEN_417_EFI,
    ToolTestCase,
    build,
    describe,
    make_root,
    run_on_root,
    run_tool,
    use_xen_efi,
)

LATIN1 = os.fsdecode(b"caf\xe9")


def latin1_folder(test):
    """A temporary folder whose own name holds the byte 0xE9, removed when
    `test` ends."""
    folder = Path(tempfile.mkdtemp(prefix="xbb-"))
    test.addCleanup(shutil.rmtree, folder, ignore_errors=True)
    return folder / LATIN1


def json_of(test, result, status=0):
    test.assertEqual(result.returncode, status, describe(result))
    return json.loads(result.stdout)


class NonUtf8InJson(ToolTestCase):
    def test_build_under_a_latin1_root_succeeds_twice_and_keeps_a_valid_record(self):
        template = make_root(self, "--generations", "2")
        root_path = latin1_folder(self)
        shutil.copytree(template.path, root_path, symlinks=True)
        root = type(template)(root_path)
        build(self, root)
        record = json.loads((root.esp / RECORD).read_bytes().decode("utf-8"))
        self.assertTrue(any("caf\\xe9" in path for path in record["sources"]), record["sources"])
        second = build(self, root)
        self.assertEqual(second.stderr, "")
        self.assertEqual(json_of(self, run_on_root(root, "--json", "plan"))["changes"], [])
        self.assertTrue(json_of(self, run_on_root(root, "--json", "list"))["generations"][1]["installed"])

    def test_build_with_a_xen_efi_resolved_through_a_latin1_store_path(self):
        root = make_root(self, "--generations", "1")
        store_path = use_xen_efi(root, root.entry(1), XEN_417_EFI, "xen-linked")
        package = root.store_path(store_path).parents[1]
        moved = package.with_name(LATIN1 + "-xen")
        package.rename(moved)
        package.symlink_to(moved.name)
        build(self, root)
        record = json.loads((root.esp / RECORD).read_bytes().decode("utf-8"))
        self.assertTrue(any(path.endswith("/caf\\xe9-xen/boot/xen.efi") for path in record["sources"]), record)
        build(self, root)
        self.assertEqual(json_of(self, run_on_root(root, "--json", "plan"))["changes"], [])

    def test_list_and_plan_json_with_an_entry_whose_init_has_byte_e9(self):
        root = make_root(self, "--generations", "2", "--default", "1")
        entry = root.esp / "loader/entries" / root.entry(2)["entry"]
        text = entry.read_bytes()
        toplevel = root.entry(2)["toplevel"].encode()
        entry.write_bytes(text.replace(toplevel, toplevel[:-3] + b"\xe9xy"))
        for command in ("list", "plan"):
            document = json_of(self, run_on_root(root, "--json", command))
            reasons = [generation["reason"] or "" for generation in document["generations"]]
            self.assertTrue(any("\\xe9xy" in reason for reason in reasons), document)

    def test_inspect_json_of_a_pe_whose_section_name_has_byte_ff(self):
        folder = Path(tempfile.mkdtemp(prefix="xbb-"))
        self.addCleanup(shutil.rmtree, folder, ignore_errors=True)
        image = folder / "xen.efi"
        data = bytearray(XEN_417_EFI.read_bytes())
        pe = struct.unpack_from("<I", data, 0x3C)[0]
        optional_size = struct.unpack_from("<H", data, pe + 4 + 16)[0]
        first_section = pe + 4 + 20 + optional_size
        self.assertEqual(bytes(data[first_section:first_section + 5]), b".text")
        data[first_section + 1] = 0xFF
        image.write_bytes(data)
        document = json_of(self, run_tool("inspect", "--json", image))
        self.assertEqual(document["sections"][0]["name"], ".\\xffext")
        self.assertEqual(document["path"], str(image))


if __name__ == "__main__":
    unittest.main()
