"""Shared helpers of the safety tests: build NixOS-like roots with
fixtures/mkroot.py, run the built xen-boot-builder (optionally under the
crashpoint shim), snapshot and compare ESP trees, and stage the update the
crash tests replay.

Nothing here uses the tool's code: ESPs are read with espcheck.py and plain
file comparisons."""

import ctypes
import ctypes.util
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import espcheck

# The integration tests' rule for the layout of a run (common.tool_argv).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from common import DECIDES_LAYOUT  # noqa: E402

TEMPORARY_MARKER = ".xbb-tmp-"
CRASH_STATUS = 137
# The record a run keeps of the images it wrote: a cache holding their mtimes,
# so two runs that write the same bytes at different times leave different
# records. Compared through record_problems, never byte for byte.
RECORD = "EFI/xen/xen-boot-builder.json"

SOURCE_DIR = Path(os.environ.get("XBB_SOURCE_DIR", Path(__file__).resolve().parents[2]))
DEPS_DIR = Path(os.environ.get("XBB_DEPS_DIR", SOURCE_DIR / ".cache" / "deps"))
MKROOT = SOURCE_DIR / "fixtures" / "mkroot.py"
XEN_417_EFI = DEPS_DIR / "xen-hypervisor-4.17-amd64/boot/xen-4.17-amd64.efi"


def required_path(variable):
    value = os.environ.get(variable)
    if not value:
        raise AssertionError(f"${variable} is not set (run through ctest)")
    path = Path(value)
    if not path.is_file():
        raise AssertionError(f"${variable}={value} does not exist (build first)")
    return path


def binary():
    return required_path("XBB_BINARY")


def crashpoint():
    return required_path("XBB_CRASHPOINT")


def scratch_folder(test, prefix):
    """A folder removed when `test` ends; on a tmpfs when there is one, so
    that the many runs do not wait for a disk."""
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    test.addCleanup(shutil.rmtree, folder, ignore_errors=True)
    return folder


# ---------------------------------------------------------------- roots


class Root:
    """A root made by mkroot: its folder, ESP and manifest."""

    def __init__(self, path):
        self.path = Path(path)
        self.esp = self.path / "boot"
        self.manifest = json.loads((self.path / "manifest.json").read_text())

    def entry(self, generation, specialisation=None):
        for entry in self.manifest["entries"]:
            if entry["generation"] == generation and entry["profile"] is None \
                    and entry["specialisation"] == specialisation:
                return entry
        raise KeyError(f"no entry for generation {generation}")

    def store_path(self, absolute):
        return self.path / absolute.lstrip("/")

    def esp_path(self, esp_absolute):
        return self.esp / esp_absolute.lstrip("/")


def make_root(test, folder, *options):
    test.assertTrue(XEN_417_EFI.is_file(), f"missing real input {XEN_417_EFI} (run .ci/setup)")
    test.assertTrue(MKROOT.is_file(), f"missing {MKROOT}")
    result = subprocess.run([sys.executable, str(MKROOT), str(folder), *options],
                            capture_output=True, text=True, check=False)
    test.assertEqual(result.returncode, 0, f"mkroot {' '.join(options)} failed:\n{result.stderr}")
    return Root(folder)


# ---------------------------------------------------------------- running


def run_tool(root, esp, verbosity="quiet", preload_env=None, extra_args=()):
    """Runs the built tool on `esp` with generations from `root`. With
    `preload_env` (a dict), under the crashpoint shim with that environment."""
    env = dict(os.environ)
    env.pop("efiMountPoint", None)
    env["NO_COLOR"] = "1"
    if preload_env is not None:
        env["LD_PRELOAD"] = str(crashpoint())
        env.update({key: str(value) for key, value in preload_env.items()})
    return subprocess.run(tool_command(root, esp, verbosity, extra_args), capture_output=True, text=True,
                          env=env, check=False, timeout=300)


def tool_command(root, esp, verbosity="quiet", extra_args=()):
    """The tool's command line for a run on `esp` with generations from
    `root`; `--layout unified` unless `extra_args` decide the layout."""
    extra_args = [str(arg) for arg in extra_args]
    layout = [] if DECIDES_LAYOUT & set(extra_args) else ["--layout", "unified"]
    parts = espcheck.partitions(esp)
    where = ["--esp", str(parts[0])] + (["--xbootldr", str(parts[1])] if len(parts) > 1 else [])
    return [str(binary()), "--root", str(root.path), *where, *layout, *extra_args, verbosity]


def describe(result):
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


# ---------------------------------------------------------------- trees


def is_temporary(relative):
    return TEMPORARY_MARKER in Path(relative).name


def snapshot(folder):
    """Every path under `folder` -> ("dir",), ("link", target) or
    ("file", sha256, mode)."""
    folder = Path(folder)
    tree = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_symlink():
            tree[relative] = ("link", os.readlink(path))
        elif path.is_dir():
            tree[relative] = ("dir",)
        else:
            tree[relative] = ("file", hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mode & 0o7777)
    return tree


def final_files(tree):
    """A snapshot without temporaries."""
    return {path: value for path, value in tree.items() if not is_temporary(path)}


def is_record(path):
    """The record (see RECORD), on an ESP or on a partition of a disk folder."""
    return path == RECORD or path.endswith("/" + RECORD)


def without_record(tree):
    """A snapshot without the record."""
    return {path: value for path, value in tree.items() if not is_record(path)}


class _Xxh128(ctypes.Structure):
    _fields_ = [("low64", ctypes.c_uint64), ("high64", ctypes.c_uint64)]


_xxhash = None


def xxh3_128_hex(data):
    """XXH3-128 of `data` in xxHash's canonical form (high half first), from
    the libxxhash the tool itself links."""
    global _xxhash
    if _xxhash is None:
        _xxhash = ctypes.CDLL(ctypes.util.find_library("xxhash") or "libxxhash.so.0")
        _xxhash.XXH3_128bits.restype = _Xxh128
        _xxhash.XXH3_128bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    value = _xxhash.XXH3_128bits(data, len(data))
    return f"{value.high64:016x}{value.low64:016x}"


def record_hash(data):
    """The record's hash of an image's bytes, as RecordHash (record.hpp)
    defines it: XXH3-128 of the bytes with the PE CheckSum field (4 bytes at
    e_lfanew + 88 of a file that starts with "MZ" and holds them whole) read
    as zeros, followed by that field as it is."""
    if len(data) >= 64 and data[:2] == b"MZ":
        field = struct.unpack_from("<I", data, 60)[0] + 88
        if field + 4 <= len(data):
            data = data[:field] + bytes(4) + data[field + 4:] + data[field:field + 4]
    return xxh3_128_hex(data)


def record_problems(esp):
    """What is wrong with the record on `esp`: it must be complete JSON (it
    is written to a temporary and renamed like everything else), and it may
    vouch only for what it describes: an image it lists whose size and mtime
    are still the recorded ones (then the tool trusts the entry without
    reading the file) must have the recorded record hash (and, for a shared
    image, the recorded SHA-256). On a disk folder, the record on the
    partition that holds the images."""
    partition = espcheck.partitions(esp)[-1]
    path = partition / RECORD
    if not path.exists():
        return []
    try:
        images = json.loads(path.read_text())["images"]
        problems = []
        for image, recorded in images.items():
            file = partition / image
            if not file.is_file() or file.is_symlink():
                continue
            info = file.stat()
            if (info.st_size, info.st_mtime_ns) != (recorded["size"], recorded["mtime_ns"]):
                continue
            data = file.read_bytes()
            if record_hash(data) != recorded["digest"]:
                problems.append(f"{RECORD} vouches for {image} (same size and mtime) with a digest it does not have")
            if recorded["sha256"] and hashlib.sha256(data).hexdigest() != recorded["sha256"]:
                problems.append(f"{RECORD} vouches for {image} (same size and mtime) with a SHA-256 it does not have")
        return problems
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        return [f"{RECORD} is not a complete record: {error!r}"]


def temporaries(tree):
    return sorted(path for path in tree if is_temporary(path))


def tree_difference(actual, expected):
    """Human-readable differences between two snapshots (empty when equal)."""
    lines = []
    for path in sorted(set(actual) | set(expected)):
        if path not in expected:
            lines.append(f"unexpected {path}")
        elif path not in actual:
            lines.append(f"missing {path}")
        elif actual[path] != expected[path]:
            lines.append(f"differs {path}: {actual[path]} != {expected[path]}")
    return lines


def copy_tree(source, destination):
    shutil.copytree(source, destination, symlinks=True)


def xen_bootable(esp, status=None):
    """Ids of the Xen entries that boot; `status`: espcheck.entry_problems(esp),
    when the caller has it already."""
    if status is None:
        status = espcheck.entry_problems(esp)
    return {ident for ident, problem in status.items() if problem is None and ident.startswith("xen-")}


# ---------------------------------------------------------------- the update


class Scenario:
    """What every update the crash sweep replays may add to its checks (the
    defaults add nothing)."""

    def comparable(self, esp, tree):
        """The view of `tree`, a snapshot of `esp`, that the sweep compares."""
        return tree

    def esp_problems(self, esp):
        """What the scenario requires of the ESP before and after a complete
        run, beyond what the sweep checks."""
        return []


NEW_XEN_PARAMS = ["dom0_mem=2048M,max:2048M", "dom0_max_vcpus=4"]
NEW_KERNEL = "/EFI/nixos/0000000000000000000000000000000a-linux-6.12.8-bzImage.efi"


class Update(Scenario):
    """An ESP before an update run (`before`) and the root the update reads,
    as NixOS leaves them: the tool ran once after generations 1..N-1 were
    installed; then `nixos-rebuild switch` added generation N (its entry, its
    initrd, loader.conf's default rewritten by systemd-boot's installer), the
    garbage collector removed generation 1 (entry and initrd), generation
    NEW_PARAMS's Xen parameters changed and generation NEW_KERNEL's entry got
    a new kernel.

    What the update must do, for the tests to check that it did it:
    `before_xen` and `after_xen` (ids of the Xen entries that boot before and
    after), `rewritten` (images whose bytes change), `removed` and `added`
    (ESP paths). The tool runs with FIRST_RUN_ARGS before the update and with
    RUN_ARGS for it."""

    GENERATIONS = 7
    NEW_PARAMS = 3
    NEW_KERNEL = 5
    MKROOT_OPTIONS = ()
    FIRST_RUN_ARGS = ()
    RUN_ARGS = ()

    def __init__(self, test, folder):
        self.test = test
        self.folder = Path(folder)
        self.root = make_root(test, self.folder / "root", "--generations", str(self.GENERATIONS),
                              *self.MKROOT_OPTIONS)
        self.prepare_root()
        self.esp = self.root.esp
        self.entries = self.esp / "loader/entries"
        newest = self.root.entry(self.GENERATIONS)
        self.xen_ids = {n: self.xen_id(self.root.entry(n)) for n in range(1, self.GENERATIONS + 1)}

        # Before the newest generation existed.
        newest_entry = (self.entries / newest["entry"]).read_bytes()
        newest_initrd = self.esp_file(newest["initrd"])
        newest_initrd_bytes = newest_initrd.read_bytes()
        (self.entries / newest["entry"]).unlink()
        newest_initrd.unlink()
        self.set_default(self.root.entry(self.GENERATIONS - 1)["entry_id"])
        first = run_tool(self.root, self.esp, extra_args=self.FIRST_RUN_ARGS)
        test.assertEqual(first.returncode, 0, "first run failed: " + describe(first))
        self.after_first_run()

        # nixos-rebuild switch: the newest generation installed, default rewritten.
        (self.entries / newest["entry"]).write_bytes(newest_entry)
        newest_initrd.write_bytes(newest_initrd_bytes)
        self.set_default(newest["entry_id"])

        # Garbage collection of the oldest generations.
        for generation in self.COLLECTED:
            oldest = self.root.entry(generation)
            (self.entries / oldest["entry"]).unlink()
            self.esp_file(oldest["initrd"]).unlink()

        self.change_xen_params(self.root.entry(self.NEW_PARAMS))
        self.change_kernel(self.root.entry(self.NEW_KERNEL))

        self.before = self.folder / "before"
        copy_tree(self.esp, self.before)

    @staticmethod
    def xen_id(entry):
        return entry["xen_entry"]

    def esp_file(self, esp_absolute):
        return self.esp / esp_absolute.lstrip("/")

    def image(self, generation):
        return f"EFI/xen/{self.root.entry(generation)['xen_image']}"

    def prepare_root(self):
        pass

    def after_first_run(self):
        pass

    def set_default(self, entry_id):
        path = self.esp / "loader/loader.conf"
        text = path.read_text()
        path.write_text(re.sub(r"(?m)^default .*$", f"default {entry_id}", text))

    def change_xen_params(self, entry):
        boot_json = self.root.store_path(entry["toplevel"]) / "boot.json"
        document = json.loads(boot_json.read_text())
        document["org.xenproject.bootspec.v1"]["xenParams"] = NEW_XEN_PARAMS
        document["org.xenproject.bootspec.v2"]["params"] = NEW_XEN_PARAMS
        boot_json.chmod(0o644)
        boot_json.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        boot_json.chmod(0o444)

    def change_kernel(self, entry):
        self.esp_file(NEW_KERNEL).write_bytes(b"dummy Linux 6.12.8 bzImage\n")
        path = self.entries / entry["entry"]
        path.write_text(re.sub(r"(?m)^linux .*$", f"linux {NEW_KERNEL}", path.read_text()))

    COLLECTED = (1,)

    @property
    def before_xen(self):
        # The collected generations' initrds went with them: their Xen entries no longer boot.
        return {self.xen_ids[n] for n in range(1, self.GENERATIONS) if n not in self.COLLECTED}

    @property
    def after_xen(self):
        return {self.xen_ids[n] for n in range(1, self.GENERATIONS + 1) if n not in self.COLLECTED}

    @property
    def rewritten(self):
        return [self.image(self.NEW_PARAMS), self.image(self.NEW_KERNEL)]

    @property
    def removed(self):
        return [self.image(n) for n in self.COLLECTED]

    @property
    def added(self):
        return [self.image(self.GENERATIONS)]


class HashUpdate(Update):
    """The same update with content-addressed entry names and boot counting:
    entries `nixos-<sha256>+3.conf`, loader.conf `preferred nixos-<sha256>.conf`
    and `default nixos-*`. The new kernel changes the entry's text, hence its
    name: the installer writes it under a new name and removes the old one.
    Between the runs systemd-boot counted one boot attempt of the previous
    default's Xen entry (`+3` became `+2-1`)."""

    GENERATIONS = 5
    NEW_PARAMS = 3
    NEW_KERNEL = 2
    MKROOT_OPTIONS = ("--scheme", "hash", "--boot-counting", "3")

    def set_default(self, entry_id):
        # systemd-boot's installer rewrites both lines.
        path = self.esp / "loader/loader.conf"
        text = re.sub(r"(?m)^preferred .*$", f"preferred {entry_id}", path.read_text())
        path.write_text(re.sub(r"(?m)^default .*$", "default nixos-*", text))

    def after_first_run(self):
        previous_default = self.xen_ids[self.GENERATIONS - 1].removesuffix(".conf")
        counted = self.entries / f"{previous_default}+3.conf"
        self.test.assertTrue(counted.is_file(), f"the first run wrote no {counted.name} (boot counting)")
        counted.rename(self.entries / f"{previous_default}+2-1.conf")

    def change_kernel(self, entry):
        self.esp_file(NEW_KERNEL).write_bytes(b"dummy Linux 6.12.8 bzImage\n")
        old = self.entries / entry["entry"]
        text = re.sub(r"(?m)^linux .*$", f"linux {NEW_KERNEL}", old.read_text())
        rest = hashlib.sha256(text.encode()).hexdigest()
        (self.entries / f"nixos-{rest}+3.conf").write_text(text)
        old.unlink()
        self.changed_kernel_id = f"xen-{rest}.conf"

    @property
    def after_xen(self):
        kept = {self.xen_ids[n] for n in range(2, self.GENERATIONS + 1) if n != self.NEW_KERNEL}
        return kept | {self.changed_kernel_id}

    @property
    def rewritten(self):
        return [self.image(self.NEW_PARAMS)]

    @property
    def removed(self):
        return [self.image(1), self.image(self.NEW_KERNEL)]

    @property
    def added(self):
        return [self.image(self.GENERATIONS), f"EFI/xen/{self.changed_kernel_id.removesuffix('.conf')}.efi"]


def xen_build(root, entry, build):
    """Gives the entry's generation a xen.efi of its own Xen build number
    `build`: Debian's 4.17 image with another COFF TimeDateStamp (and no
    checksum, which PE allows), so that its bytes, and its shared image, are
    its own. Points its bootspec (v1 and v2) at it."""
    data = bytearray(XEN_417_EFI.read_bytes())
    (pe_offset,) = struct.unpack_from("<I", data, 0x3C)
    struct.pack_into("<I", data, pe_offset + 8, 0x5EED0000 + build)  # COFF TimeDateStamp
    struct.pack_into("<I", data, pe_offset + 24 + 64, 0)  # optional header CheckSum
    store_path = f"/nix/store/{hashlib.sha256(bytes(data)).hexdigest()[:32]}-xen-4.17.7-build-{build}/boot/xen.efi"
    target = root.store_path(store_path)
    if not target.exists():
        target.parent.mkdir(parents=True)
        target.write_bytes(bytes(data))
        target.chmod(0o444)
    boot_json = root.store_path(entry["toplevel"]) / "boot.json"
    document = json.loads(boot_json.read_text())
    document["org.xenproject.bootspec.v1"]["xen"] = store_path
    document["org.xenproject.bootspec.v2"]["efiPath"] = store_path
    boot_json.chmod(0o644)
    boot_json.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    boot_json.chmod(0o444)
    return target


def shared_image(version, xen_efi):
    """The ESP path of the shared layout's image of a xen.efi without debug
    sections, which is a byte-for-byte copy: xen-<version>-<8 hex of its
    SHA-256>.efi."""
    return f"EFI/xen/xen-{version}-{hashlib.sha256(Path(xen_efi).read_bytes()).hexdigest()[:8]}.efi"


class SharedUpdate(Update):
    """The update in the shared layout, with new Xen builds: generation 1
    boots Xen build A, 2 and 3 build B, the new generation 4 build C. The
    first run (generations 1..3) writes images A and B and a .cfg per entry;
    the update collects generation 1 (image A is then used by no entry and
    goes, after its entry), changes 2's Xen parameters and 3's kernel (their
    .cfg files change, images stay), and adds 4 with image C."""

    GENERATIONS = 4
    NEW_PARAMS = 2
    NEW_KERNEL = 3
    FIRST_RUN_ARGS = ("--layout", "shared")
    RUN_ARGS = ("--layout", "shared")
    BUILDS = {1: 1, 2: 2, 3: 2, 4: 3}

    def prepare_root(self):
        self.xen_efis = {n: xen_build(self.root, self.root.entry(n), build) for n, build in self.BUILDS.items()}

    def image(self, generation):
        return shared_image(self.root.manifest["xen_version"], self.xen_efis[generation])

    def config(self, generation):
        return f"EFI/xen/xen-{self.root.entry(generation)['rest']}.cfg"

    @property
    def rewritten(self):
        return [self.config(self.NEW_PARAMS), self.config(self.NEW_KERNEL)]

    @property
    def removed(self):
        return [self.image(1), *(self.config(n) for n in self.COLLECTED)]

    @property
    def added(self):
        return [self.image(self.GENERATIONS), self.config(self.GENERATIONS)]


def root_after_a_first_run(test, folder, generations, first_args=()):
    """A root of `generations` generations in `folder`/root, the tool run
    once on its ESP with `first_args`."""
    root = make_root(test, Path(folder) / "root", "--generations", str(generations))
    first = run_tool(root, root.esp, extra_args=first_args)
    test.assertEqual(first.returncode, 0, "first run failed: " + describe(first))
    return root


class LayoutSwitch(Scenario):
    """One run switching an ESP from one layout to the other (FIRST_RUN_ARGS
    to RUN_ARGS) with nothing else changed: every entry is rewritten to name
    the new files, the new files are added and the old ones removed, and
    every Xen entry boots throughout."""

    GENERATIONS = 2
    FIRST_RUN_ARGS = ()
    RUN_ARGS = ()

    def __init__(self, test, folder):
        self.folder = Path(folder)
        self.root = root_after_a_first_run(test, self.folder, self.GENERATIONS, self.FIRST_RUN_ARGS)
        self.before = self.folder / "before"
        copy_tree(self.root.esp, self.before)
        self.entries = self.root.manifest["entries"]
        self.ids = {entry["xen_entry"] for entry in self.entries}

    @property
    def before_xen(self):
        return self.ids

    @property
    def after_xen(self):
        return self.ids

    @property
    def rewritten(self):
        return [f"loader/entries/{entry_id}" for entry_id in sorted(self.ids)]

    def unified_files(self):
        return [f"EFI/xen/{entry['xen_image']}" for entry in self.entries]

    def shared_files(self):
        image = shared_image(self.root.manifest["xen_version"], self.root.store_path(self.root.manifest["xen_efi"]))
        return [image, *(f"EFI/xen/xen-{entry['rest']}.cfg" for entry in self.entries)]


class UnifiedToShared(LayoutSwitch):
    RUN_ARGS = ("--layout", "shared")

    @property
    def removed(self):
        return self.unified_files()

    @property
    def added(self):
        return self.shared_files()


class SharedToUnified(LayoutSwitch):
    FIRST_RUN_ARGS = ("--layout", "shared")
    RUN_ARGS = ("--layout", "unified")

    @property
    def removed(self):
        return self.shared_files()

    @property
    def added(self):
        return self.unified_files()


# ---------------------------------------------------------------- signing


def signing_key(folder):
    """A key and its self-signed certificate (PEM) made by openssl in
    `folder`; the key is created private (0600) before openssl writes it."""
    key, cert = Path(folder) / "db.key", Path(folder) / "db.pem"
    os.close(os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=xbb test db",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return key, cert


def without_signature(data):
    """A PE32+ image without its Authenticode signature: the certificate
    table (the Security data directory, index 4, a file offset and size) cut
    out, that directory entry and the CheckSum (which covers it) zeroed. Two
    signings of the same image differ in their signing time only: this is
    what they share."""
    data = bytearray(data)
    (pe_offset,) = struct.unpack_from("<I", data, 0x3C)
    optional = pe_offset + 24
    if struct.unpack_from("<H", data, optional)[0] != 0x20B:
        raise AssertionError("not a PE32+ image")
    security = optional + 112 + 4 * 8
    address, size = struct.unpack_from("<II", data, security)
    if size:
        del data[address:address + size]
    struct.pack_into("<II", data, security, 0, 0)
    struct.pack_into("<I", data, optional + 64, 0)
    return bytes(data)


class SignedImages:
    """Snapshots of an ESP whose images are signed, for comparing: signatures
    carry their signing time, so an image signed again after a crash differs
    from the uninterrupted run's in its signature only. Each EFI/xen image's
    state becomes the SHA-256 of its bytes without the signature, its mode,
    and whether sbverify finds a signature `cert` verifies."""

    def __init__(self, cert):
        self.cert = cert
        self.known = {}  # sha256 of the signed bytes -> (sha256 without signature, verified)

    def image_state(self, path, digest):
        if digest not in self.known:
            checked = subprocess.run(["sbverify", "--cert", str(self.cert), str(path)],
                                     capture_output=True, check=False)
            unsigned = hashlib.sha256(without_signature(path.read_bytes())).hexdigest()
            self.known[digest] = (unsigned, checked.returncode == 0)
        return self.known[digest]

    def comparable(self, esp, tree):
        """`tree` (a snapshot of `esp`) with each EFI/xen image's state
        replaced as said above."""
        view = dict(tree)
        for path, state in tree.items():
            if path.startswith("EFI/xen/") and path.endswith(".efi") and state[0] == "file":
                unsigned, verified = self.image_state(Path(esp) / path, state[1])
                view[path] = ("signed image", unsigned, state[2], "signature verifies" if verified else "NOT SIGNED")
        return view


class SignedSelfContainedUpdate(Update):
    """The update of Update, in the self-contained layout with signing (a
    test key): images carry kernel and initrd and are signed with sbsign
    and checked before they are renamed into place. Generation 2 gets new
    Xen parameters, 3 a new kernel (in its bootspec, which the image embeds,
    and in its entry), 4 is new, 1 is collected. Generation 1's Xen entry
    boots before the run although its initrd left the ESP: its image carries
    its own. Images are compared without their signatures (SignedImages),
    and every image under a final name must carry a valid signature."""

    GENERATIONS = 4
    NEW_PARAMS = 2
    NEW_KERNEL = 3

    def prepare_root(self):
        keys = self.folder / "keys"
        keys.mkdir(mode=0o700)
        key, cert = signing_key(keys)
        self.FIRST_RUN_ARGS = self.RUN_ARGS = ("--layout", "self-contained", "--sign-key", str(key),
                                               "--sign-cert", str(cert))
        self.signed = SignedImages(cert)

    def change_kernel(self, entry):
        super().change_kernel(entry)
        kernel = "/nix/store/0000000000000000000000000000000a-linux-6.12.8/bzImage"
        target = self.root.store_path(kernel)
        target.parent.mkdir(parents=True)
        target.write_bytes(b"dummy Linux 6.12.8 bzImage\n")
        target.chmod(0o444)
        boot_json = self.root.store_path(entry["toplevel"]) / "boot.json"
        document = json.loads(boot_json.read_text())
        document["org.nixos.bootspec.v1"]["kernel"] = kernel
        boot_json.chmod(0o644)
        boot_json.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        boot_json.chmod(0o444)

    def comparable(self, esp, tree):
        return self.signed.comparable(esp, tree)

    def esp_problems(self, esp):
        view = self.signed.comparable(esp, snapshot(esp))
        return [f"{path} has no signature the certificate verifies" for path, state in sorted(view.items())
                if state[0] == "signed image" and state[3] != "signature verifies"]

    @property
    def before_xen(self):
        return {self.xen_ids[n] for n in range(1, self.GENERATIONS)}


class Migration(Scenario):
    """An ESP as the shell script left it: Xen entries `xen-<rest>.conf`
    whose images are `EFI/nixos/xen-<rest>.efi` (made here by moving a real
    run's images there and pointing the entries at them; their configuration
    names the kernel by an ESP-absolute path, so it still resolves). The run
    must put the images in `EFI/xen/`, point the entries there and remove the
    old images, with every entry bootable throughout."""

    GENERATIONS = 3
    RUN_ARGS = ()

    def __init__(self, test, folder):
        self.folder = Path(folder)
        self.root = root_after_a_first_run(test, self.folder, self.GENERATIONS)
        esp = self.root.esp
        self.ids = set()
        for entry in self.root.manifest["entries"]:
            image = entry["xen_image"]
            (esp / "EFI/xen" / image).rename(esp / "EFI/nixos" / image)
            path = esp / "loader/entries" / entry["xen_entry"]
            path.write_text(re.sub(r"(?m)^efi .*$", f"efi /EFI/nixos/{image}", path.read_text()))
            self.ids.add(entry["xen_entry"])
        shutil.rmtree(esp / "EFI/xen")
        self.before = self.folder / "before"
        copy_tree(esp, self.before)
        self.images = [entry["xen_image"] for entry in self.root.manifest["entries"]]

    @property
    def before_xen(self):
        return self.ids

    @property
    def after_xen(self):
        return self.ids

    @property
    def rewritten(self):
        return [f"loader/entries/{entry_id}" for entry_id in sorted(self.ids)]

    @property
    def removed(self):
        return [f"EFI/nixos/{image}" for image in self.images]

    @property
    def added(self):
        return [f"EFI/xen/{image}" for image in self.images]


class XbootldrMigration(Scenario):
    """A machine whose NixOS entries and kernels moved to an Extended Boot
    Loader partition: the tool had run on the ESP alone; then NixOS's
    installer wrote its entries and kernels to XBOOTLDR, removed the ESP's,
    and pointed loader.conf's default at its own entry. `before` is a disk
    folder (espcheck.DISK_PARTITIONS: ESP/ and XBOOTLDR/). The run must write
    the Xen entries and images on XBOOTLDR, remove the ESP's old ones (whose
    kernels are gone), and retarget the ESP's loader.conf."""

    GENERATIONS = 3
    RUN_ARGS = ()

    def __init__(self, test, folder):
        self.folder = Path(folder)
        self.root = root_after_a_first_run(test, self.folder, self.GENERATIONS)
        esp = self.root.esp
        self.before = self.folder / "before"
        on_esp, on_xbootldr = (self.before / name for name in espcheck.DISK_PARTITIONS)
        copy_tree(esp, on_esp)
        (on_xbootldr / "loader/entries").mkdir(parents=True)
        (on_xbootldr / "EFI").mkdir()
        for entry in (on_esp / "loader/entries").glob("nixos-*.conf"):
            entry.rename(on_xbootldr / "loader/entries" / entry.name)
        (on_esp / "EFI/nixos").rename(on_xbootldr / "EFI/nixos")
        conf = on_esp / "loader/loader.conf"
        default = self.root.manifest["default_entry"]
        conf.write_text(re.sub(r"(?m)^default .*$", f"default {default}", conf.read_text()))
        self.entries = self.root.manifest["entries"]
        self.ids = {entry["xen_entry"] for entry in self.entries}

    @property
    def before_xen(self):
        return set()

    @property
    def after_xen(self):
        return self.ids

    @property
    def rewritten(self):
        return []

    @property
    def removed(self):
        return sorted([f"ESP/loader/entries/{entry['xen_entry']}" for entry in self.entries]
                      + [f"ESP/EFI/xen/{entry['xen_image']}" for entry in self.entries])

    @property
    def added(self):
        return sorted([f"XBOOTLDR/loader/entries/{entry['xen_entry']}" for entry in self.entries]
                      + [f"XBOOTLDR/EFI/xen/{entry['xen_image']}" for entry in self.entries])


class MigrationToAuto(Migration):
    """The shell script's layout switched by the first run of the default
    layout, `auto`: one shared image and a configuration file per entry."""

    RUN_ARGS = ("--layout", "auto")

    @property
    def added(self):
        image = shared_image(self.root.manifest["xen_version"], self.root.store_path(self.root.manifest["xen_efi"]))
        return [image, *(f"EFI/xen/xen-{entry['rest']}.cfg" for entry in self.root.manifest["entries"])]
