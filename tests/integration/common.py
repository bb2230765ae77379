"""Shared helpers of the integration tests: build a NixOS-like root with
fixtures/mkroot.py, run the built xen-boot-builder, and read the ESP
independently of the tool (plain text parsing and binutils' objcopy)."""

import ctypes
import hashlib
import json
import os
import re
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

SOURCE_DIR = Path(os.environ.get("XBB_SOURCE_DIR", Path(__file__).resolve().parents[2]))
MKROOT = SOURCE_DIR / "fixtures" / "mkroot.py"
DEPS_DIR = Path(os.environ.get("XBB_DEPS_DIR", SOURCE_DIR / ".cache" / "deps"))
XEN_417_EFI = DEPS_DIR / "xen-hypervisor-4.17-amd64/boot/xen-4.17-amd64.efi"
XEN_420_EFI = DEPS_DIR / "xen-hypervisor-4.20-amd64/boot/xen-4.20-amd64.efi"
BINARY = Path(os.environ.get("XBB_BINARY", SOURCE_DIR / "build" / "xen-boot-builder"))
PROGRESS_LINE = "Installing Xen Project Hypervisor boot entries...done."
# The first line of every entry and configuration the tool writes (README,
# "What it writes"): how it tells its own files from hand-made ones.
MARKER = "# Written by xen-boot-builder, which rewrites or removes this file; do not edit."
# The record a run keeps of the images it wrote (issue 9, the fast path): a
# cache whose content depends on the mtimes of the files it describes, so
# two ESPs built apart differ in it and nowhere else.
RECORD = "EFI/xen/xen-boot-builder.json"


# ---------------------------------------------------------------- roots


class Root:
    """A root made by mkroot: its folder, its ESP and its manifest."""

    def __init__(self, path):
        self.path = Path(path)
        self.esp = self.path / "boot"
        self.manifest = json.loads((self.path / "manifest.json").read_text())

    @property
    def entries(self):
        return self.manifest["entries"]

    def entry(self, generation, profile=None, specialisation=None):
        for entry in self.entries:
            if (entry["generation"], entry["profile"], entry["specialisation"]) == (
                generation,
                profile,
                specialisation,
            ):
                return entry
        raise KeyError(f"no entry for generation {generation} {profile} {specialisation}")

    def xen_entries(self):
        return [entry for entry in self.entries if entry["has_xen"]]

    def store_path(self, absolute):
        """`/nix/store/...` as a path under this root."""
        return self.path / absolute.lstrip("/")

    def esp_path(self, esp_absolute):
        """`/EFI/...` (as an entry line says) as a path under the ESP."""
        return self.esp / esp_absolute.lstrip("/")


def run_mkroot(root_dir, *options):
    """Run mkroot.py as a program; returns the completed process."""
    return subprocess.run(
        [sys.executable, str(MKROOT), str(root_dir), *options],
        capture_output=True,
        text=True,
        check=False,
    )


def make_root(test, *options):
    """Build a root in a temporary folder removed when `test` ends."""
    folder = Path(tempfile.mkdtemp(prefix="xbb-root-"))
    test.addCleanup(shutil.rmtree, folder, ignore_errors=True)
    result = run_mkroot(folder / "root", *options)
    test.assertEqual(result.returncode, 0, f"mkroot {' '.join(options)} failed:\n{result.stderr}")
    return Root(folder / "root")


def make_template_root(test_class, *options):
    """A root made once for a test class (removed after its tests), for
    copy_root: cheaper than running mkroot for every test that changes one."""
    folder = Path(tempfile.mkdtemp(prefix="xbb-template-"))
    test_class.addClassCleanup(shutil.rmtree, folder, ignore_errors=True)
    result = run_mkroot(folder / "root", *options)
    if result.returncode != 0:
        raise AssertionError(f"mkroot {' '.join(options)} failed:\n{result.stderr}")
    return Root(folder / "root")


def copy_root(test, template):
    """A private copy of a template root (symlinks copied as links, every file
    a copy of its own), removed when `test` ends."""
    folder = Path(tempfile.mkdtemp(prefix="xbb-root-"))
    test.addCleanup(shutil.rmtree, folder, ignore_errors=True)
    shutil.copytree(template.path, folder / "root", symlinks=True)
    return Root(folder / "root")


# ---------------------------------------------------------------- ESP readers


def parse_loader_entry(text):
    """A systemd-boot entry as a list of (key, value) pairs, in file order."""
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        pairs.append((key, value.strip()))
    return pairs


def entry_fields(text):
    """A systemd-boot entry as a dict (last value wins for repeated keys)."""
    return dict(parse_loader_entry(text))


def sha256_file(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_tools(test):
    """Fail (never skip) when a real input the tests need is missing."""
    test.assertTrue(XEN_417_EFI.is_file(), f"missing real input {XEN_417_EFI} (run .ci/setup)")


def check_binary(test):
    test.assertTrue(
        BINARY.is_file() and os.access(BINARY, os.X_OK),
        f"missing xen-boot-builder at {BINARY} (set XBB_BINARY or build first)",
    )


class RootTestCase(unittest.TestCase):
    def setUp(self):
        check_tools(self)


class ToolTestCase(RootTestCase):
    """Tests that run the built xen-boot-builder."""

    def setUp(self):
        super().setUp()
        check_binary(self)


# ---------------------------------------------------------------- running the tool


def tool_environment(efi_mount_point=None):
    """The test's environment without efiMountPoint (unless given) and
    without colour."""
    env = {key: value for key, value in os.environ.items() if key != "efiMountPoint"}
    env["NO_COLOR"] = "1"
    if efi_mount_point is not None:
        env["efiMountPoint"] = str(efi_mount_point)
    return env


# Most tests were written for the unified layout, the default before `auto`:
# a run through these helpers that names no layout, and does not make the
# layout self-contained (signing, generations from the profiles), gets
# `--layout unified`. Tests of the default layout name `--layout auto`, or
# run the binary themselves (test_layouts.AutoLayout).
DECIDES_LAYOUT = {"--layout", "--lanzaboote", "--sign-key", "profiles", "verify", "inspect",
                  "--help", "--version"}


def tool_argv(argv):
    """The command line of a run with `argv`: BINARY [--layout unified] ARGV."""
    argv = [str(arg) for arg in argv]
    layout = [] if DECIDES_LAYOUT & set(argv) else ["--layout", "unified"]
    return [str(BINARY), *layout, *argv]


def run_tool(*argv, efi_mount_point=None, preexec_fn=None):
    """Run the binary with `argv` (never through a shell)."""
    return subprocess.run(
        tool_argv(argv),
        capture_output=True,
        text=True,
        check=False,
        env=tool_environment(efi_mount_point),
        preexec_fn=preexec_fn,
        timeout=300,
    )


def run_on_root(root, *argv):
    """Run the tool on a mkroot root: --root ROOT --esp ROOT/boot ARGV...,
    but with the options the command takes: verify reads only the ESP (it
    gets --esp alone) and inspect only its image (neither); each refuses
    the others."""
    if "inspect" in argv:
        where = []
    elif "verify" in argv:
        where = ["--esp", root.esp]
    else:
        where = ["--root", root.path, "--esp", root.esp]
    return run_tool(*where, *argv)


def describe(result):
    status = f"exit {result.returncode}"
    if getattr(result, "timed_out", False):
        status += f" (killed after {result.timeout} s: it hung)"
    if hasattr(result, "peak_rss"):
        status += f", peak RSS {result.peak_rss >> 20} MiB"
    return f"{status}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


# Bounds for runs fed hostile inputs: a run that would hang is killed after
# HANG_TIMEOUT seconds (far above the second a run takes: a guard, not a
# timing), and the child may map at most ADDRESS_SPACE bytes, so that one that
# would read without end fails instead of taking the machine's memory.
HANG_TIMEOUT = 60
ADDRESS_SPACE = 1 << 30


class BoundedResult:
    """A finished bounded run: returncode (negative for a signal), stdout,
    stderr, the child's peak resident set in bytes, and whether it was killed
    for running past `timeout` seconds."""

    def __init__(self, returncode, stdout, stderr, peak_rss, timeout, timed_out):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.peak_rss = peak_rss
        self.timeout = timeout
        self.timed_out = timed_out


def run_bounded(*argv, timeout=HANG_TIMEOUT, address_space=ADDRESS_SPACE):
    """Run the binary with `argv` under the hang and memory bounds above; the
    peak RSS is this child's own (wait4), not that of earlier children."""

    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            tool_argv(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=tool_environment(),
            preexec_fn=limit_memory,
        )
        deadline = time.monotonic() + timeout
        timed_out = False
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                timed_out = True
                break
            time.sleep(0.02)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return BoundedResult(
            process.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            usage.ru_maxrss * 1024,
            timeout,
            timed_out,
        )


def run_bounded_on_root(root, *argv):
    """run_bounded with --root ROOT --esp ROOT/boot ARGV..."""
    return run_bounded("--root", root.path, "--esp", root.esp, *argv)


class TracedCall:
    """One system call as strace printed it: its name, its string arguments
    (paths, in order), the rest of its arguments as text, and its result;
    with strace -y, `fd_paths` are the paths of its file descriptor
    arguments, in order."""

    def __init__(self, name, strings, arguments, result):
        self.name = name
        self.strings = strings
        self.arguments = arguments
        self.result = result
        self.fd_paths = TRACE_FD_PATH.findall(arguments)

    def __repr__(self):
        return f"{self.name}({self.arguments}) = {self.result}"


TRACE_LINE = re.compile(r"^\d+\s+(\w+)\((.*)\)\s+=\s+(-?\d+)")
TRACE_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
TRACE_FD_PATH = re.compile(r"(?<![\w\"])-?\d+<([^>]*)>")


def run_traced(test, root, *argv, calls="openat,renameat,renameat2,rename,unlinkat,unlink", fd_paths=False):
    """Run the tool on a mkroot root under strace (following threads and
    children), tracing `calls` (with the paths of file descriptors when
    `fd_paths`: strace -y): the completed process and the calls that
    returned, in order. `argv` may start with options for the tool; `--root`
    and `--esp` are given unless argv holds `verify`, which takes only --esp."""
    folder = Path(tempfile.mkdtemp(prefix="xbb-trace-"))
    test.addCleanup(shutil.rmtree, folder, ignore_errors=True)
    trace = folder / "trace"
    where = ["--esp", str(root.esp)] if "verify" in argv else ["--root", str(root.path), "--esp", str(root.esp)]
    result = subprocess.run(
        ["strace", "-f", "-qq", *(["-y"] if fd_paths else []), "-e", f"trace={calls}", "-o", str(trace),
         *tool_argv([*where, *argv])],
        capture_output=True, text=True, check=False, env=tool_environment(), timeout=300,
    )
    test.assertTrue(trace.is_file(), "strace wrote no trace: " + describe(result))
    traced = []
    for line in trace.read_text().splitlines():
        match = TRACE_LINE.match(line)
        if match:
            name, arguments, value = match.groups()
            traced.append(TracedCall(name, TRACE_STRING.findall(arguments), arguments, int(value)))
    return result, traced


def warnings_of(result):
    """The text of each `warning:` line the run printed."""
    return [line[len("warning: "):] for line in result.stderr.splitlines() if line.startswith("warning: ")]


def build(test, root, verbosity="info", *options):
    """Run the drop-in form and require success."""
    result = run_on_root(root, *options, verbosity)
    test.assertEqual(result.returncode, 0, describe(result))
    return result


def with_esp_bound_on_boot(esp):
    """A preexec_fn that gives the child a private mount namespace in which
    `esp` is bind-mounted on /boot (needs root, or user namespaces)."""
    libc = ctypes.CDLL(None, use_errno=True)
    clone_newns, clone_newuser = 0x00020000, 0x10000000
    ms_rec, ms_private, ms_bind = 0x4000, 0x40000, 0x1000
    uid, gid = os.geteuid(), os.getegid()

    def check(result, what):
        if result != 0:
            raise OSError(ctypes.get_errno(), f"{what} failed")

    def enter():
        if uid == 0:
            check(libc.unshare(clone_newns), "unshare(CLONE_NEWNS)")
        else:
            check(libc.unshare(clone_newns | clone_newuser), "unshare(CLONE_NEWNS|CLONE_NEWUSER)")
            Path("/proc/self/setgroups").write_text("deny")
            Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
            Path("/proc/self/gid_map").write_text(f"0 {gid} 1")
        check(libc.mount(None, b"/", None, ms_rec | ms_private, None), "mount --make-rprivate /")
        check(libc.mount(str(esp).encode(), b"/boot", None, ms_bind, None), f"mount --bind {esp} /boot")

    return enter


# ---------------------------------------------------------------- ESP oracles


def snapshot_esp(esp):
    """Every file and link under the ESP: relative path -> (inode, mtime_ns,
    sha256 or link target). Equal snapshots mean nothing was written."""
    snapshot = {}
    for path in sorted(Path(esp).rglob("*")):
        info = path.lstat()
        if path.is_symlink():
            content = "link:" + os.readlink(path)
        elif path.is_file():
            content = sha256_file(path)
        else:
            continue
        snapshot[str(path.relative_to(esp))] = (info.st_ino, info.st_mtime_ns, content)
    return snapshot


def without_record(snapshot):
    """A snapshot (path -> anything) without the run's record: for comparing
    ESPs made by different runs, whose records differ by the mtimes they
    hold."""
    return {path: state for path, state in snapshot.items() if path != RECORD}


def read_entry_pairs(root, name):
    return parse_loader_entry((root.esp / "loader/entries" / name).read_text())


def xen_entry_files(root):
    return sorted(p.name for p in (root.esp / "loader/entries").glob("xen-*.conf"))


def xen_image_files(root):
    return sorted(p.name for p in (root.esp / "EFI/xen").glob("*.efi"))


def extract_section(image, section):
    """A PE section's bytes as binutils' objcopy sees them (the independent
    oracle: never the tool's own reader)."""
    with tempfile.TemporaryDirectory(prefix="xbb-section-") as folder:
        out = Path(folder) / "section.bin"
        result = subprocess.run(
            ["objcopy", "-O", "binary", f"--only-section={section}", str(image), str(out)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"objcopy could not extract {section} from {image}: {result.stderr}")
        return out.read_bytes() if out.exists() else b""


def section_headers(image):
    """Section name -> (size, vma) from `objdump -h`."""
    result = subprocess.run(["objdump", "-h", str(image)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise AssertionError(f"objdump -h {image} failed: {result.stderr}")
    headers = {}
    for line in result.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 7 and fields[0].isdigit():
            headers[fields[1]] = (int(fields[2], 16), int(fields[3], 16))
    return headers


def pe_header(image):
    """The numeric fields of the PE optional header as binutils' `objdump -p`
    prints them (name -> int)."""
    result = subprocess.run(["objdump", "-p", str(image)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise AssertionError(f"objdump -p {image} failed: {result.stderr}")
    fields = {}
    for line in result.stdout.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0][:1].isupper() and words[0].isalnum():
            try:
                fields.setdefault(words[0], int(words[1], 16))
            except ValueError:
                pass
    return fields


def strip_debug(test, image):
    """`objcopy --strip-debug` of a PE image, in a folder removed when `test`
    ends: the independent oracle for images without their .debug_* sections."""
    folder = Path(tempfile.mkdtemp(prefix="xbb-stripped-"))
    test.addCleanup(shutil.rmtree, folder, ignore_errors=True)
    out = folder / Path(image).name
    result = subprocess.run(["objcopy", "--strip-debug", str(image), str(out)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise AssertionError(f"objcopy --strip-debug {image} failed: {result.stderr}")
    return out


def assert_same_build_id(test, image, source):
    """Debian's Xen images start .buildid with their one debug directory entry
    (28 bytes; PointerToRawData, the file offset of the CodeView record, at
    bytes 24..28), followed by that 0x19-byte record. Moving section data (a
    new section header, left out debug sections) moves the record; the entry
    must follow it. Every other byte is the source's."""
    source_buildid, image_buildid = extract_section(source, ".buildid"), extract_section(image, ".buildid")
    test.assertEqual(image_buildid[:24], source_buildid[:24])
    test.assertEqual(image_buildid[28:], source_buildid[28:])
    record = source_buildid[28:28 + 0x19]
    test.assertTrue(record.startswith(b"RSDS"))
    offset = int.from_bytes(image_buildid[24:28], "little")
    test.assertEqual(Path(image).read_bytes()[offset:offset + len(record)], record)


def assert_sections_of_stripped(test, image, source, added=()):
    """`image` has the sections of `objcopy --strip-debug` of `source`, in
    its order, with the same sizes, addresses and bytes (but .buildid's
    pointer to its record, see assert_same_build_id), then `added`. Returns
    the stripped copy."""
    stripped = strip_debug(test, source)
    kept = section_headers(stripped)
    image_sections = section_headers(image)
    test.assertEqual(list(image_sections), [*kept, *added])
    test.assertEqual({name: image_sections[name] for name in kept}, kept)
    for name in kept:
        if name != ".buildid":
            test.assertEqual(extract_section(image, name), extract_section(stripped, name), name)
    if ".buildid" in kept:
        assert_same_build_id(test, image, stripped)
    return stripped


def pe_subsystem(image):
    """The Subsystem field as binutils' `objdump -p` reads it."""
    result = subprocess.run(["objdump", "-p", str(image)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise AssertionError(f"objdump -p {image} failed: {result.stderr}")
    for line in result.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "Subsystem":
            return int(fields[1], 16)
    raise AssertionError(f"objdump -p {image} shows no Subsystem")


def set_pe_subsystem(image, subsystem):
    """Patch the Subsystem of a PE32+ file in place (PE/COFF: e_lfanew at
    0x3c, then "PE\\0\\0", the 20-byte COFF header and the optional header,
    whose Subsystem is the 16-bit field at offset 68), then check it with
    objdump."""
    data = bytearray(Path(image).read_bytes())
    (pe_offset,) = struct.unpack_from("<I", data, 0x3C)
    if data[pe_offset:pe_offset + 4] != b"PE\0\0":
        raise AssertionError(f"{image}: no PE signature at {pe_offset:#x}")
    optional = pe_offset + 4 + 20
    (magic,) = struct.unpack_from("<H", data, optional)
    if magic != 0x20B:
        raise AssertionError(f"{image}: optional header magic {magic:#x}, not PE32+")
    struct.pack_into("<H", data, optional + 68, subsystem)
    Path(image).write_bytes(bytes(data))
    if pe_subsystem(image) != subsystem:
        raise AssertionError(f"{image}: objdump does not read Subsystem {subsystem} after the patch")


# ---------------------------------------------------------------- expectations


def xen_file_name(esp_path):
    """`/EFI/nixos/x.efi` as Xen opens it from EFI/xen/: `\\EFI\\nixos\\x.efi`."""
    return esp_path.replace("/", "\\")


def expected_xen_config(entry, linux=None, initrd=None):
    """The .config text spec section 3.2 owes for a manifest entry. `linux` and
    `initrd` override the ESP paths (when a test edits the source entry)."""
    kernel = xen_file_name(linux or entry["linux"])
    ramdisk = xen_file_name(initrd or entry["initrd"])
    kernel_line = " ".join([kernel, f"init={entry['init']}", *entry["kernel_params"]])
    return (
        f"{MARKER}\n"
        "[global]\n"
        "default=nixos\n"
        "\n"
        "[nixos]\n"
        f"options={' '.join(entry['xen_params'])}\n"
        f"kernel={kernel_line}\n"
        f"ramdisk={ramdisk}\n"
    )


def expected_xen_entry(entry):
    """The (key, value) lines spec section 3.1 owes for a manifest entry."""
    pairs = [
        ("title", f"{entry['title']} (with Xen Hypervisor)"),
        ("version", entry["version"]),
        ("efi", f"/EFI/xen/{entry['xen_image']}"),
    ]
    if entry["machine_id"]:
        pairs.append(("machine-id", entry["machine_id"]))
    if entry["sort_key"]:
        pairs.append(("sort-key", entry["sort_key"]))
    return pairs


def rewrite_bootspec(root, entry, change):
    """Apply `change(document)` to an entry's boot.json, written back the way
    NixOS writes it."""
    path = root.store_path(entry["toplevel"] + "/boot.json")
    document = json.loads(path.read_text())
    change(document)
    path.chmod(0o644)
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")


def use_xen_efi(root, entry, source, name, version=None):
    """Put `source` in the root's store as /nix/store/<hash>-<name>/boot/xen.efi
    and point the entry's bootspec (v1 and v2) at it, with `version` as v2's
    version when given (a new Xen build for that generation). Returns the
    store path."""
    digest = hashlib.sha256(Path(source).read_bytes()).hexdigest()[:32]
    store_path = f"/nix/store/{digest}-{name}/boot/xen.efi"
    target = root.store_path(store_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    target.chmod(0o444)

    def change(document):
        document["org.xenproject.bootspec.v1"]["xen"] = store_path
        if "org.xenproject.bootspec.v2" in document:
            document["org.xenproject.bootspec.v2"]["efiPath"] = store_path
            if version is not None:
                document["org.xenproject.bootspec.v2"]["version"] = version

    rewrite_bootspec(root, entry, change)
    return store_path


def xen_efi_with_config(test, source, config_text):
    """A copy of `source` with a .config section added by binutils' objcopy
    (at the end of Debian's 4.17 image), in a folder removed when `test`
    ends: a xen.efi that already carries a configuration."""
    folder = Path(tempfile.mkdtemp(prefix="xbb-configured-"))
    test.addCleanup(shutil.rmtree, folder, ignore_errors=True)
    config, out = folder / "config", folder / "xen.efi"
    config.write_text(config_text)
    result = subprocess.run(
        ["objcopy", f"--add-section=.config={config}",
         "--set-section-flags=.config=contents,alloc,load,readonly,data",
         "--change-section-address=.config=0xffff82d041000000", str(source), str(out)],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"objcopy could not add .config to {source}: {result.stderr}")
    test.assertIn(".config", section_headers(out))
    return out
