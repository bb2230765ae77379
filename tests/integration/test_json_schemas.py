"""--json output of plan, list, verify and inspect against the schemas that
document it (man/json/<command>.schema.json, JSON Schema 2020-12, checked
with the jsonschema library): every document, in every case it has (errors,
skipped generations, changes, PE and ELF images), is valid; and the schemas
are strict enough that a document of another version, with an unknown field
or without a required one is not."""

import copy
import json
import shutil
import unittest

import jsonschema

from common import (
    SOURCE_DIR,
    XEN_417_EFI,
    ToolTestCase,
    build,
    describe,
    make_root,
    run_on_root,
    run_tool,
)

SCHEMAS = SOURCE_DIR / "man" / "json"
XEN_417_GZ = XEN_417_EFI.with_name("xen-4.17-amd64.gz")
COMMANDS = ["plan", "list", "verify", "inspect"]


def validator(command):
    schema = json.loads((SCHEMAS / f"{command}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


class Schemas(ToolTestCase):
    @classmethod
    def setUpClass(cls):
        cls.validators = {command: validator(command) for command in COMMANDS}

    def assert_valid(self, command, result, status=0):
        self.assertEqual(result.returncode, status, describe(result))
        document = json.loads(result.stdout)
        errors = [f"{list(error.absolute_path)}: {error.message}" for error in self.validators[command].iter_errors(document)]
        self.assertEqual(errors, [], f"{command} --json does not match its schema:\n{result.stdout}")
        self.assertEqual((document["schema"], document["version"]), (f"xen-boot-builder/{command}", 1))
        return document

    def assert_invalid(self, command, document, why):
        self.assertFalse(self.validators[command].is_valid(document), f"{command}: accepted {why}")

    def test_the_schemas_are_in_one_folder_one_per_command(self):
        self.assertEqual(sorted(path.name for path in SCHEMAS.iterdir()), sorted(f"{c}.schema.json" for c in COMMANDS))

    def test_plan_and_list_before_and_after_a_build(self):
        root = make_root(
            self, "--generations", "4", "--missing-bootspec", "1", "--no-xen", "2", "--specialisation", "debug"
        )
        plan = self.assert_valid("plan", run_on_root(root, "--json", "plan"))
        self.assertEqual({change["kind"] for change in plan["changes"]}, {"added"})
        self.assertEqual(
            {status["status"] for status in plan["generations"]}, {"skipped", "no-xen", "xen-entry"}
        )
        self.assert_valid("list", run_on_root(root, "--json", "list"))
        build(self, root)
        # A removed and a changed entry.
        (root.esp / "loader/entries" / root.entry(3, specialisation="debug")["entry"]).unlink()
        entry = root.esp / "loader/entries" / root.entry(3)["entry"]
        entry.write_text(entry.read_text().replace("title NixOS", "title NixOS renamed"))
        plan = self.assert_valid("plan", run_on_root(root, "--json", "plan"))
        self.assertEqual(sorted(change["kind"] for change in plan["changes"]), ["changed", "removed"])
        self.assertEqual(
            plan["removals"],
            [
                "loader/entries/xen-generation-3-specialisation-debug.conf",
                "EFI/xen/xen-generation-3-specialisation-debug.efi",
            ],
        )
        listed = self.assert_valid("list", run_on_root(root, "--json", "list"))
        self.assertTrue(any(generation["installed"] for generation in listed["generations"]))

    def test_plan_of_a_default_generation_without_a_xen_entry(self):
        root = make_root(self, "--generations", "2", "--missing-bootspec", "2")
        plan = self.assert_valid("plan", run_on_root(root, "--json", "plan"), status=1)
        self.assertEqual((plan["ok"], plan["default_failure"]), (False, "nixos-generation-2"))

    def test_plan_and_list_with_the_esp_missing(self):
        root = make_root(self, "--generations", "1")
        shutil.rmtree(root.esp)
        for command in ["plan", "list"]:
            with self.subTest(command=command):
                document = self.assert_valid(command, run_on_root(root, "--json", command), status=1)
                self.assertEqual(document["error"]["kind"], "esp-missing")

    def test_verify_of_a_good_and_a_broken_esp(self):
        root = make_root(self, "--generations", "2")
        build(self, root)
        self.assertTrue(self.assert_valid("verify", run_tool("--esp", root.esp, "--json", "verify"))["ok"])
        (root.esp / "EFI/xen/xen-generation-1.efi").unlink()
        broken = self.assert_valid("verify", run_tool("--esp", root.esp, "--json", "verify"), status=1)
        self.assertEqual([e["entry"] for e in broken["entries"] if e["problems"]], ["xen-generation-1.conf"])

    def test_inspect_of_pe_and_elf_images(self):
        root = make_root(self, "--generations", "1")
        build(self, root)
        for image, form in [
            (XEN_417_EFI, "PE32+"),
            (root.esp / "EFI/xen/xen-generation-1.efi", "PE32+"),
            (XEN_417_GZ, "ELF32"),
        ]:
            with self.subTest(image=image.name):
                document = self.assert_valid("inspect", run_tool("--json", "inspect", image))
                self.assertEqual(document["format"], form)

    def test_the_schemas_refuse_another_version_an_unknown_field_and_a_missing_one(self):
        root = make_root(self, "--generations", "2", "--no-xen", "1")
        build(self, root)
        documents = {
            "plan": run_on_root(root, "--json", "plan"),
            "list": run_on_root(root, "--json", "list"),
            "verify": run_tool("--esp", root.esp, "--json", "verify"),
            "inspect": run_tool("--json", "inspect", XEN_417_EFI),
        }
        for command, result in documents.items():
            with self.subTest(command=command):
                document = self.assert_valid(command, result)
                for key, value in [("version", 2), ("schema", "xen-boot-builder/other"), ("unknown", 1)]:
                    changed = copy.deepcopy(document)
                    changed[key] = value
                    self.assert_invalid(command, changed, f"{key}={value!r}")
                for key in document:
                    missing = copy.deepcopy(document)
                    del missing[key]
                    self.assert_invalid(command, missing, f"a document without {key}")
        listed = json.loads(documents["list"].stdout)
        no_xen = copy.deepcopy(listed)
        no_xen["generations"][0]["entry"] = "loader/entries/xen-generation-1.conf"
        self.assert_invalid("list", no_xen, "an entry for a generation without Xen")


if __name__ == "__main__":
    unittest.main()
