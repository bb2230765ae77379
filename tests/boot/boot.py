#!/usr/bin/env python3
"""Boots an ESP folder under QEMU and judges the serial log.

The recipe is the one measured in docs/boot-test.md: OVMF firmware, QEMU's
TCG emulation, systemd-boot as the removable-media loader, Xen, a Debian
kernel as dom0 and a tiny busybox initrd whose /init prints what systemd-boot
and the kernel were told, then a unique marker, and powers off.

Library (used by test_boot.py) and command line (for trying layouts by hand):

    boot.py initrd OUT.cpio.gz [--marker TEXT]
    boot.py image TREE OUT.img
    boot.py disk OUT.img TREE:TYPE [TREE:TYPE ...]
    boot.py boot TREE [--timeout SECONDS] [--log FILE] [--secure-boot] [--systemd-boot SUITE]

Only Python's standard library and the Debian packages named in the recipe
are used. Real inputs come from $XBB_DEPS_DIR (the folder .ci/setup fills).
"""

import argparse
import dataclasses
import gzip
import lzma
import os
import re
import resource
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
# Debian's Secure Boot firmware: Secure Boot enforced, with the snakeoil test
# key in PK, KEK and db (boot-test.md, "Secure Boot"). It needs SMM. The key
# is encrypted with the password "snakeoil" (the ovmf package's README.Debian).
OVMF_CODE_SECURE = Path("/usr/share/OVMF/OVMF_CODE_4M.snakeoil.fd")
OVMF_VARS_SECURE = Path("/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd")
SNAKEOIL_KEY = Path("/usr/share/ovmf/PkKek-1-snakeoil.key")
SNAKEOIL_CERT = Path("/usr/share/ovmf/PkKek-1-snakeoil.pem")
SNAKEOIL_PASSWORD = "snakeoil"

# systemd-boot's vendor GUID: it records the entry it started in the EFI
# variable LoaderEntrySelected under this GUID.
LOADER_GUID = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"

# Xen parameters that put Xen and dom0 on the serial port and keep dom0 small,
# and dom0 parameters that send its console to Xen's (boot-test.md).
XEN_PARAMS = ["console=com1", "com1=115200,8n1", "dom0_mem=512M,max:512M", "dom0_max_vcpus=1"]
DOM0_PARAMS = ["console=hvc0", "earlyprintk=xen"]

# The first of these in the serial log ends the boot as a failure
# (boot-test.md, "Judging a boot"). QEMU's exit code alone proves nothing.
FAILURE_PATTERNS = [
    re.compile(p)
    for p in (
        r"Open failed for",
        r"Seek failed for",
        r"No configuration file found",
        r"Configuration file not found",
        r"No initial domain kernel specified",
        r"Reboot Into Firmware Interface",
        r"Panic on CPU",
        r"Dom0 crashed",
        r"Kernel panic",
        r"Failed to (load|start)",
        # Firmware refusing an image under Secure Boot: systemd-boot shows
        # `Error loading \EFI\xen\<image>: Access Denied`.
        r"Access Denied",
        # Xen 4.21+ under Secure Boot without shim, given a dom0 kernel that
        # is not embedded in its signed image.
        r"Refusing to boot unverified kernel",
    )
]

# A last resort: failures show in the log within seconds. A loaded machine
# (two boots in parallel beside a build) needs several times the ~20 s an idle
# one takes.
DEFAULT_TIMEOUT = 240.0
# How long the log is read on after a failure pattern, for the rest of the message.
FAILURE_CONTEXT_SECONDS = 2.0
IMAGE_MIN_KIB = 65536
TAIL_LINES = 60

BOOT_COUNTER = re.compile(r"\+\d+(-\d+)?(?=\.conf$)")

ANSI_ESCAPE = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|[()][A-Za-z0-9]|[=>c])")


class BootError(AssertionError):
    """A boot that did not show what was expected; the message ends with the
    tail of the serial log."""


# ---------------------------------------------------------------------------
# Real inputs


def deps_dir() -> Path:
    value = os.environ.get("XBB_DEPS_DIR")
    if not value:
        raise RuntimeError("XBB_DEPS_DIR is not set (the folder .ci/setup unpacks packages into)")
    path = Path(value)
    if not path.is_dir():
        raise RuntimeError(f"XBB_DEPS_DIR={path}: no such folder")
    return path


def require_file(path: Path) -> Path:
    if not path.is_file():
        raise RuntimeError(f"{path}: missing (run .ci/setup)")
    return path


def busybox() -> Path:
    return require_file(deps_dir() / "busybox-static/bin/busybox")


# The systemd-boot builds .ci/setup unpacks: Debian 12's (252) and Debian
# sid's (262 when written; the first Debian one that honours `preferred` in
# loader.conf, which came with 260).
SYSTEMD_BOOT_PACKAGES = {"bookworm": "systemd-boot-efi", "sid": "systemd-boot-efi-sid"}

# The Xen images .ci/setup unpacks: Debian 12's 4.17, Debian 13's 4.20 and
# upstream's 4.22.0 (nixpkgs' Xen, from ../shared/assets). XEN_RELEASES: the
# exact release of those that do not follow Debian's updates, for the
# bootspec's version.
XEN_IMAGES = {
    "4.17": "xen-hypervisor-4.17-amd64/boot/xen-4.17-amd64.efi",
    "4.20": "xen-hypervisor-4.20-amd64/boot/xen-4.20-amd64.efi",
    "4.22": "xen-4.22.0/xen.efi",
}
XEN_RELEASES = {"4.22": "4.22.0"}


def systemd_boot(suite: str = "bookworm") -> Path:
    package = SYSTEMD_BOOT_PACKAGES[suite]
    return require_file(deps_dir() / package / "usr/lib/systemd/boot/efi/systemd-bootx64.efi")


def systemd_boot_version(image: Path) -> int:
    """systemd-boot's major version, from the LoaderInfo string it carries
    (`#### LoaderInfo: systemd-boot 262.1-1 ####`)."""
    found = re.search(rb"#### LoaderInfo: systemd-boot (\d+)", image.read_bytes())
    if not found:
        raise RuntimeError(f"{image}: no systemd-boot LoaderInfo string")
    return int(found.group(1))


def xen_efi(version: str = "4.17") -> Path:
    return require_file(deps_dir() / XEN_IMAGES[version])


def amd_microcode() -> Path:
    """A real microcode container (AMD families 10h-14h) from Debian's
    amd64-microcode: the `.ucode` input of the tests."""
    return require_file(deps_dir() / "amd64-microcode/usr/lib/firmware/amd-ucode/microcode_amd.bin")


def kernel(package: str = "linux-image") -> Path:
    """The kernel of an unpacked Debian kernel package: `linux-image` is
    Debian 12's (6.1), `linux-image-trixie` Debian 13's (6.12), which the
    Secure Boot firmware needs (Debian 12's halts under SMM)."""
    found = sorted((deps_dir() / package / "boot").glob("vmlinuz-*"))
    if len(found) != 1:
        raise RuntimeError(f"{deps_dir() / package / 'boot'}: expected one vmlinuz-*, found {len(found)} "
                           "(run .ci/setup)")
    return found[0]


def trixie_kernel() -> Path:
    return kernel("linux-image-trixie")


def efivarfs_module(kernel_path: Path) -> bytes:
    """The efivarfs module from the kernel's own package (uncompressed: Debian
    13 ships it xz-compressed under usr/lib, busybox's insmod loads a plain
    one): /init mounts efivarfs to read which entry systemd-boot started."""
    release = kernel_path.name.removeprefix("vmlinuz-")
    package = kernel_path.resolve().parent.parent
    relative = f"modules/{release}/kernel/fs/efivarfs/efivarfs.ko"
    for folder in ("lib", "usr/lib"):
        plain, packed = package / folder / relative, package / folder / f"{relative}.xz"
        if plain.is_file():
            return plain.read_bytes()
        if packed.is_file():
            return lzma.decompress(packed.read_bytes())
    raise RuntimeError(f"{package}: no {relative} under lib/ or usr/lib/ (run .ci/setup)")


# ---------------------------------------------------------------------------
# initrd: a newc cpio archive, written here so that /dev/console needs no root


class _Cpio:
    def __init__(self) -> None:
        self.data = bytearray()
        self.inode = 1

    def _entry(self, name: str, mode: int, body: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        encoded = name.encode() + b"\0"
        fields = [
            self.inode, mode, 0, 0, 1, 0, len(body),
            0, 0, rdev[0], rdev[1], len(encoded), 0,
        ]
        self.inode += 1
        self.data += b"070701" + b"".join(b"%08X" % f for f in fields)
        self.data += encoded
        self._pad()
        self.data += body
        self._pad()

    def _pad(self) -> None:
        self.data += b"\0" * (-len(self.data) % 4)

    def directory(self, name: str) -> None:
        self._entry(name, 0o040755)

    def file(self, name: str, body: bytes, executable: bool = False) -> None:
        self._entry(name, 0o100755 if executable else 0o100644, body)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, 0o120777, target.encode())

    def char_device(self, name: str, major: int, minor: int) -> None:
        self._entry(name, 0o020600, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return bytes(self.data)


INIT_SCRIPT = """#!/bin/sh
/bin/busybox mkdir -p /proc /sys
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox insmod /lib/efivarfs.ko
/bin/busybox mount -t efivarfs efivarfs /sys/firmware/efi/efivars
var=/sys/firmware/efi/efivars/LoaderEntrySelected-{guid}
if [ -e "$var" ]; then
  entry=$(/bin/busybox tail -c +5 "$var" | /bin/busybox tr -d '\\000')
else
  entry=-
fi
echo "XBB-ENTRY <$entry>"
echo "XBB-CMDLINE <$(/bin/busybox cat /proc/cmdline)>"
echo "{marker}"
/bin/busybox poweroff -f
"""


def new_marker() -> str:
    return f"XBB-BOOT-OK {secrets.token_hex(8)}"


def build_initrd(dest: Path, marker: str, kernel_path: Path | None = None) -> Path:
    """Writes a gzip'd newc initrd whose /init prints the selected systemd-boot
    entry, the kernel command line and then `marker`, and powers off."""
    kernel_path = kernel_path or kernel()
    archive = _Cpio()
    for folder in ("bin", "dev", "lib", "proc", "sys"):
        archive.directory(folder)
    archive.file("bin/busybox", busybox().read_bytes(), executable=True)
    archive.symlink("bin/sh", "busybox")
    archive.char_device("dev/console", 5, 1)
    archive.file("lib/efivarfs.ko", efivarfs_module(kernel_path))
    archive.file("init", INIT_SCRIPT.format(guid=LOADER_GUID, marker=marker).encode(), executable=True)
    dest.write_bytes(gzip.compress(archive.finish(), compresslevel=6, mtime=0))
    return dest


# ---------------------------------------------------------------------------
# ESP


def install_systemd_boot(tree: Path, signing: "SigningKey | None" = None, suite: str = "bookworm") -> Path:
    """Puts systemd-boot (`suite`'s, see SYSTEMD_BOOT_PACKAGES) where firmware
    looks on removable media; signed with `signing` when given (Secure Boot
    firmware runs only signed loaders)."""
    dest = tree / "EFI/BOOT/BOOTX64.EFI"
    dest.parent.mkdir(parents=True, exist_ok=True)
    if signing:
        sign(systemd_boot(suite), dest, signing)
    else:
        shutil.copyfile(systemd_boot(suite), dest)
    return dest


def set_loader_option(tree: Path, key: str, value: str | None) -> None:
    """Sets (or, with value None, removes) one `key value` line of
    loader/loader.conf, keeping every other line."""
    conf = tree / "loader/loader.conf"
    lines = conf.read_text().splitlines() if conf.exists() else []
    kept = [line for line in lines if line.split(maxsplit=1)[:1] != [key]]
    if value is not None:
        kept.append(f"{key} {value}")
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text("".join(line + "\n" for line in kept))


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if not found:
        raise RuntimeError(f"{name}: not installed")
    return found


def _tree_kib(tree: Path) -> int:
    total = 0
    for path in tree.rglob("*"):
        if path.is_file():
            total += (path.stat().st_size + 4095) // 4096 * 4
    return total


def _run(argv: list[str], **kwargs) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {done.returncode}: {done.stderr.strip() or done.stdout.strip()}")


def _fat_kib(tree: Path) -> int:
    """The size of a FAT filesystem for `tree`: 64 MiB, or more when the tree
    needs it (several Xen 4.20 images do), in whole MiB."""
    return -(-max(IMAGE_MIN_KIB, _tree_kib(tree) * 5 // 4 + 8192) // 1024) * 1024


def _copy_tree(tree: Path, target: str) -> None:
    """Copies `tree`'s contents into the root of the FAT filesystem mtools
    reaches as `target` (an image, or `IMAGE@@OFFSET` for one inside a disk)."""
    members = sorted(str(p) for p in tree.iterdir())
    if members:
        env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
        _run([_tool("mcopy"), "-s", "-i", target, *members, "::/"], env=env)


def make_image(tree: Path, image: Path) -> Path:
    """Builds a FAT image (no partition table) holding `tree`."""
    image.unlink(missing_ok=True)
    _run([_tool("mkfs.vfat"), "-C", "-n", "ESP", str(image), str(_fat_kib(tree))])
    _copy_tree(tree, str(image))
    return image


# GPT partition type GUIDs: the EFI System Partition, the Extended Boot
# Loader partition (the Boot Loader Specification's XBOOTLDR, which
# systemd-boot reads entries from when it is on the ESP's disk), and Linux
# data (a partition no boot loader looks at).
ESP_TYPE = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
XBOOTLDR_TYPE = "bc13c2ff-59e6-4262-a352-b275fd6f7172"
LINUX_DATA_TYPE = "0fc63daf-8483-4772-8e79-3d69c47e8e4a"
PARTITION_TYPES = {"esp": ESP_TYPE, "xbootldr": XBOOTLDR_TYPE, "linux": LINUX_DATA_TYPE}
SECTOR = 512
MIB_SECTORS = (1 << 20) // SECTOR


@dataclasses.dataclass
class Partition:
    tree: Path  # the folder whose contents the partition's FAT filesystem holds
    type_guid: str  # its GPT partition type (ESP_TYPE, XBOOTLDR_TYPE, ...)
    label: str  # the FAT volume label and GPT partition name


def make_disk(partitions: list[Partition], image: Path) -> Path:
    """Builds a GPT disk image with one FAT partition per entry of
    `partitions`, in that order, each 1 MiB aligned and sized as make_image
    sizes an image, holding its tree. sfdisk writes the table, mkfs.vfat
    --offset formats each partition in place and mcopy fills it, so no
    loop device or root is needed."""
    starts, sizes = [], []
    next_start = MIB_SECTORS
    for partition in partitions:
        starts.append(next_start)
        sizes.append(_fat_kib(partition.tree) * 1024 // SECTOR)
        next_start += sizes[-1]
    image.unlink(missing_ok=True)
    with open(image, "wb") as disk:
        disk.truncate((next_start + MIB_SECTORS) * SECTOR)  # room for the backup GPT at the end
    table = "label: gpt\n" + "".join(
        f"start={start}, size={size}, type={p.type_guid}, name={p.label}\n"
        for p, start, size in zip(partitions, starts, sizes))
    _run([_tool("sfdisk"), "--quiet", str(image)], input=table)
    for partition, start, size in zip(partitions, starts, sizes):
        _run([_tool("mkfs.vfat"), "--offset", str(start), "-n", partition.label, str(image),
              str(size * SECTOR // 1024)])
        _copy_tree(partition.tree, f"{image}@@{start * SECTOR}")
    return image


# ---------------------------------------------------------------------------
# Secure Boot keys


@dataclasses.dataclass
class SigningKey:
    key: Path  # PEM private key, unencrypted, mode 0600
    cert: Path  # PEM certificate


def _private_file(path: Path) -> Path:
    """Creates `path` empty with mode 0600, so that a key written into it is
    never readable by others, not even for a moment."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return path


def snakeoil_key(folder: Path) -> SigningKey:
    """The key the Secure Boot firmware trusts (in its db), decrypted into a
    private file in `folder`."""
    key = _private_file(folder / "snakeoil.key")
    _run([_tool("openssl"), "pkey", "-passin", f"pass:{SNAKEOIL_PASSWORD}",
          "-in", str(require_file(SNAKEOIL_KEY)), "-out", str(key)])
    return SigningKey(key, require_file(SNAKEOIL_CERT))


def new_key(folder: Path, name: str) -> SigningKey:
    """A fresh self-signed key the firmware does not know."""
    key = _private_file(folder / f"{name}.key")
    cert = folder / f"{name}.pem"
    _run([_tool("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
          "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert)])
    return SigningKey(key, cert)


def sign(source: Path, dest: Path, signing: SigningKey) -> Path:
    """sbsign (Debian's sbsigntool) of a PE image."""
    _run([_tool("sbsign"), "--key", str(signing.key), "--cert", str(signing.cert),
          "--output", str(dest), str(source)])
    return dest


def signature_verifies(image: Path, cert: Path) -> bool:
    """Whether sbverify finds a signature of `image` that `cert` verifies."""
    done = subprocess.run([_tool("sbverify"), "--cert", str(cert), str(image)], capture_output=True, text=True)
    return done.returncode == 0


# ---------------------------------------------------------------------------
# QEMU


@dataclasses.dataclass
class BootResult:
    marker: str
    outcome: str  # "marker", "failure: <pattern>", "timeout" or "qemu exited <code>"
    log: str  # everything QEMU wrote to the serial port, as received
    seconds: float  # wall time to the verdict
    cpu_seconds: float  # CPU time QEMU used, which a loaded machine does not inflate

    @property
    def booted(self) -> bool:
        return self.outcome == "marker"

    @property
    def text(self) -> str:
        return clean(self.log)


def clean(log: str) -> str:
    """The serial log without terminal escapes and carriage returns."""
    return ANSI_ESCAPE.sub("", log).replace("\r", "")


def qemu_command(image: Path, vars_copy: Path, secure_boot: bool = False) -> list[str]:
    """QEMU with OVMF; with `secure_boot`, the snakeoil firmware, which needs
    SMM and a flash only SMM code may write."""
    machine = ["-machine", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on"] \
        if secure_boot else ["-machine", "q35"]
    code = OVMF_CODE_SECURE if secure_boot else OVMF_CODE
    return [
        _tool("qemu-system-x86_64"),
        *machine, "-accel", "tcg", "-cpu", "qemu64", "-smp", "1", "-m", "2048",
        "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
        "-drive", f"if=pflash,format=raw,unit=1,file={vars_copy}",
        "-drive", f"format=raw,file={image}",
        "-display", "none", "-vga", "none", "-monitor", "none",
        "-serial", "stdio", "-net", "none", "-no-reboot",
    ]


def _first_failure(text: str) -> str | None:
    hits = [(m.start(), p.pattern) for p in FAILURE_PATTERNS if (m := p.search(text))]
    return min(hits)[1] if hits else None


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_qemu(image: Path, marker: str, timeout: float = DEFAULT_TIMEOUT, log_file: Path | None = None,
             secure_boot: bool = False) -> BootResult:
    """Boots `image` (with Secure Boot enforced by the snakeoil firmware when
    `secure_boot`) and watches the serial port until the marker appears, a
    failure pattern appears, QEMU exits, or `timeout` seconds pass; QEMU is
    stopped in every case. After a failure pattern the log is read on for a
    moment so that it holds the whole failure message. The log is also
    written to `log_file` as it comes."""
    start = time.monotonic()
    cpu_before = _children_cpu_seconds()
    deadline = start + timeout
    received = bytearray()
    outcome = None
    seconds = None
    with tempfile.TemporaryDirectory(prefix="xbb-ovmf-") as scratch:
        vars_source = OVMF_VARS_SECURE if secure_boot else OVMF_VARS
        vars_copy = Path(scratch) / vars_source.name
        shutil.copyfile(vars_source, vars_copy)
        sink = open(log_file, "wb") if log_file else None
        proc = subprocess.Popen(
            qemu_command(image, vars_copy, secure_boot),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        try:
            fd = proc.stdout.fileno()
            while outcome != "marker":
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                ready, _, _ = select.select([fd], [], [], min(left, 1.0))
                if not ready:
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    outcome = outcome or f"qemu exited {proc.wait()}"
                    break
                received += chunk
                if sink:
                    sink.write(chunk)
                    sink.flush()
                if outcome is None:
                    text = clean(received.decode("utf-8", "replace"))
                    if marker in text:
                        outcome = "marker"
                    elif failure := _first_failure(text):
                        outcome = f"failure: {failure}"
                        deadline = min(deadline, time.monotonic() + FAILURE_CONTEXT_SECONDS)
                    if outcome:
                        seconds = time.monotonic() - start
        finally:
            _stop(proc)
            proc.stdout.close()
            if sink:
                sink.close()
    if outcome is None:
        outcome = "timeout"
    if seconds is None:
        seconds = time.monotonic() - start
    return BootResult(marker, outcome, received.decode("utf-8", "replace"), seconds,
                      _children_cpu_seconds() - cpu_before)


def boot_tree(tree: Path, marker: str, timeout: float = DEFAULT_TIMEOUT, log_file: Path | None = None,
              work: Path | None = None, secure_boot: SigningKey | None = None,
              systemd_boot_suite: str = "bookworm") -> BootResult:
    """Installs systemd-boot (`systemd_boot_suite`'s) into the ESP folder
    `tree`, builds its FAT image (beside the tree, or in `work`) and boots
    it. With `secure_boot` (the key the firmware trusts), under the Secure
    Boot firmware, systemd-boot signed with that key."""
    install_systemd_boot(tree, secure_boot, systemd_boot_suite)
    image = (work or tree.parent) / f"{tree.name}.img"
    make_image(tree, image)
    try:
        return run_qemu(image, marker, timeout, log_file, secure_boot is not None)
    finally:
        image.unlink(missing_ok=True)


def boot_disk(partitions: list[Partition], marker: str, timeout: float = DEFAULT_TIMEOUT,
              log_file: Path | None = None, work: Path | None = None,
              systemd_boot_suite: str = "bookworm") -> BootResult:
    """Installs systemd-boot (`systemd_boot_suite`'s) into the tree of the
    one ESP among `partitions`, builds their GPT disk image (beside that
    tree, or in `work`) and boots it."""
    esps = [p.tree for p in partitions if p.type_guid == ESP_TYPE]
    if len(esps) != 1:
        raise ValueError(f"a disk to boot needs exactly one ESP partition, got {len(esps)}")
    install_systemd_boot(esps[0], suite=systemd_boot_suite)
    image = (work or esps[0].parent) / "disk.img"
    make_disk(partitions, image)
    try:
        return run_qemu(image, marker, timeout, log_file)
    finally:
        image.unlink(missing_ok=True)


# ---------------------------------------------------------------------------
# Judging


def tail(log: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(clean(log).splitlines()[-lines:])


def _fail(result: BootResult, why: str) -> None:
    raise BootError(
        f"{why}\nboot outcome: {result.outcome} after {result.seconds:.1f} s\n"
        f"--- last {TAIL_LINES} lines of the serial log ---\n{tail(result.log)}"
    )


def _line_after(text: str, pattern: str) -> str | None:
    found = re.search(pattern + r"(.*)", text)
    return found.group(1).strip() if found else None


def selected_entry(text: str) -> str | None:
    """The entry id systemd-boot recorded in LoaderEntrySelected, as /init
    printed it ("-" when the variable was absent)."""
    found = re.search(r"XBB-ENTRY <([^>]*)>", text)
    return found.group(1) if found else None


def without_counter(entry: str) -> str:
    """An entry file name without its boot counter (`+LEFT[-DONE]` before
    `.conf`): the counter is not part of the entry's identity, but systemd-boot
    252 records it in LoaderEntrySelected."""
    return BOOT_COUNTER.sub("", entry)


def first_menu(text: str) -> str | None:
    """What systemd-boot's menu showed when first drawn, whitespace collapsed:
    the text between the firmware's last `starting Boot...` line and the
    first `Boot in N s.` countdown, that is the entries' titles (cut to the
    menu's width) and auto entries such as `Reboot Into Firmware Interface`.
    None when no menu was drawn."""
    found = re.search(r"starting Boot[^\n]*\n((?:(?!starting Boot).)*?)Boot in \d+ s\.", text, re.DOTALL)
    return " ".join(found.group(1).split()) if found else None


def xen_command_line(text: str) -> str | None:
    return _line_after(text, r"\(XEN\) Command line: ")


def dom0_command_line(text: str) -> str | None:
    return _line_after(text, r"Kernel command line: ")


def xen_version(text: str) -> str | None:
    found = re.search(r"Xen (\S+) \(c/s[^)]*\) EFI loader", text)
    return found.group(1) if found else None


def assert_booted(result: BootResult, expect_entry: str | None = None,
                  expect_xen_cmdline_contains: list[str] = (),
                  expect_dom0_cmdline_contains: list[str] = (),
                  expect_builtin_config: bool = True,
                  expect_config_from_option: bool = False) -> None:
    """Raises BootError, with the tail of the serial log, unless the boot
    reached /init's marker and showed every expected fact:
    - expect_entry: the entry systemd-boot says it started
      (LoaderEntrySelected, e.g. "xen-generation-3.conf"; boot counters are
      ignored on both sides);
    - Xen's `(XEN) Command line:` holds every expect_xen_cmdline_contains word;
    - dom0's `Kernel command line:` holds every expect_dom0_cmdline_contains word;
    - expect_builtin_config: Xen read the `.config` section embedded in its image;
    - expect_config_from_option: Xen read the file its -cfg= load option
      names: it printed neither 'Using builtin config file' nor 'Using
      configuration file' (which it prints only for a file found by the
      image's name; the file -cfg= names is read without a word).
    """
    text = result.text
    if not result.booted:
        _fail(result, f"the boot did not reach the marker {result.marker!r}")
    if expect_entry is not None:
        entry = selected_entry(text)
        if entry is None or without_counter(entry) != without_counter(expect_entry):
            _fail(result, f"systemd-boot started entry {entry!r}, expected {expect_entry!r}")
    if expect_builtin_config and "Using builtin config file" not in text:
        _fail(result, "Xen did not say 'Using builtin config file'")
    if expect_config_from_option:
        for message in ("Using builtin config file", "Using configuration file"):
            if message in text:
                _fail(result, f"Xen said '{message}': it did not read the file -cfg= names")
    _expect_words(result, "Xen", xen_command_line(text), expect_xen_cmdline_contains)
    _expect_words(result, "dom0", dom0_command_line(text), expect_dom0_cmdline_contains)


def _expect_words(result: BootResult, who: str, line: str | None, words) -> None:
    if not words:
        return
    if line is None:
        _fail(result, f"no {who} command line in the serial log")
    missing = [w for w in words if w not in line.split()]
    if missing:
        _fail(result, f"{who} command line {line!r} lacks {missing}")


def assert_boot_failed(result: BootResult, expect_pattern: str | None = None) -> None:
    """Raises BootError unless the boot failed (no marker), and, when
    `expect_pattern` is given, failed on that failure pattern."""
    if result.booted:
        _fail(result, "the boot reached the marker but was expected to fail")
    if expect_pattern is not None and result.outcome != f"failure: {expect_pattern}":
        _fail(result, f"the boot failed as '{result.outcome}', expected 'failure: {expect_pattern}'")


# ---------------------------------------------------------------------------
# Command line


def _partition_argument(value: str) -> Partition:
    """`TREE:TYPE` of the disk command: the label is the type's name, upper
    case (`ESP`, `XBOOTLDR`), or `DATA` for a GUID."""
    tree, _, kind = value.rpartition(":")
    if not tree:
        raise argparse.ArgumentTypeError(f"{value!r}: expected TREE:TYPE")
    type_guid = PARTITION_TYPES.get(kind.lower())
    if type_guid is None and not re.fullmatch(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}", kind):
        raise argparse.ArgumentTypeError(f"{kind!r}: not a partition type ({', '.join(PARTITION_TYPES)} or a GUID)")
    return Partition(Path(tree), type_guid or kind, kind.upper() if type_guid else "DATA")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_initrd = sub.add_parser("initrd", help="write the marker initrd")
    p_initrd.add_argument("out", type=Path)
    p_initrd.add_argument("--marker", default=None)
    p_image = sub.add_parser("image", help="build a FAT image from an ESP folder")
    p_image.add_argument("tree", type=Path)
    p_image.add_argument("out", type=Path)
    p_disk = sub.add_parser("disk", help="build a GPT disk image with a FAT partition per folder")
    p_disk.add_argument("out", type=Path)
    p_disk.add_argument("partitions", nargs="+", type=_partition_argument, metavar="TREE:TYPE",
                        help=f"a folder and its partition type: {', '.join(PARTITION_TYPES)} or a GUID")
    p_boot = sub.add_parser("boot", help="add systemd-boot to an ESP folder, build its image and boot it")
    p_boot.add_argument("tree", type=Path)
    p_boot.add_argument("--marker", required=True, help="the marker the tree's initrd prints")
    p_boot.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    p_boot.add_argument("--log", type=Path, default=None)
    p_boot.add_argument("--secure-boot", action="store_true",
                        help="Secure Boot enforced (snakeoil firmware; systemd-boot signed with its key)")
    p_boot.add_argument("--systemd-boot", choices=sorted(SYSTEMD_BOOT_PACKAGES), default="bookworm",
                        help="whose systemd-boot: Debian 12's (252) or sid's (262)")
    args = parser.parse_args(argv)

    if args.command == "initrd":
        marker = args.marker or new_marker()
        build_initrd(args.out, marker)
        print(marker)
    elif args.command == "image":
        make_image(args.tree, args.out)
    elif args.command == "disk":
        make_disk(args.partitions, args.out)
    else:
        with tempfile.TemporaryDirectory(prefix="xbb-keys-") as keys:
            signing = snakeoil_key(Path(keys)) if args.secure_boot else None
            result = boot_tree(args.tree, args.marker, args.timeout, args.log, secure_boot=signing,
                               systemd_boot_suite=args.systemd_boot)
        text = result.text
        print(f"outcome: {result.outcome} ({result.seconds:.1f} s, QEMU CPU {result.cpu_seconds:.1f} s)")
        print(f"xen: {xen_version(text)}")
        print(f"entry: {selected_entry(text)}")
        print(f"xen command line: {xen_command_line(text)}")
        print(f"dom0 command line: {dom0_command_line(text)}")
        if not result.booted:
            print(tail(result.log))
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
