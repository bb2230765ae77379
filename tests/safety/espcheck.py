#!/usr/bin/env python3
"""Reads an ESP the way firmware, systemd-boot and Xen would, independently of
xen-boot-builder (none of its code, none of its parsers).

- systemd-boot: entries are `loader/entries/*.conf`; an entry's id is its file
  name with a boot counter `+LEFT[-DONE]` before `.conf` removed.
  `loader/loader.conf` is read line by line, `#` starts a comment, the last
  `default` and the last `preferred` count. `preferred` wins when it matches
  an entry; `default` is a glob matched against the ids, with or without
  `.conf`.
- An entry with `efi` boots that EFI program: it must be a complete PE image
  (headers and every section's raw data inside the file).
- Xen takes the entry's `options` as its load options and skips their first
  word (the image name). Of the words after it, one starting with `-` or `/`
  is an option (`-cfg=<file>`, or `-cfg <file>`, names the configuration
  file), any other names the configuration section.
- Xen reads its configuration from the image's `.config` section (extracted
  here with binutils' objcopy) when there is one, whatever `-cfg` says; else
  from the `-cfg` file; else from the first of `<image name>.cfg` and the
  shorter names cut at `.`, `-` and `_` (`xen-4.2.efi`: `xen-4.2.cfg`,
  `xen-4.cfg`, `xen.cfg`) that exists. Configuration files are found in the
  image's folder. The section used is the one the options name, else
  `[global] default=`; its `kernel=`, `ramdisk=`, `xsm=`, `ucode=` and `dtb=`
  files must exist, except those the image carries as a section (`.kernel`,
  `.ramdisk`, ...: Xen uses the section and opens no file). A path starting
  with a backslash is relative to the ESP root, any other relative to the
  image's folder.
- A `linux` entry must have its `linux` and every `initrd` file.

The image layouts are covered: unified (configuration inside each image),
shared (one image without `.config`, a configuration file per entry named by
`-cfg=`) and self-contained (kernel and initrd inside the image too). FAT's case-insensitivity is not modelled: names must match exactly.

As a program: `espcheck.py ESP` prints the problems and the bootable entries,
and exits 1 when there is a problem.
"""

import fnmatch
import hashlib
import re
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

ENTRIES = "loader/entries"
LOADER_CONF = "loader/loader.conf"
BOOT_COUNTER = re.compile(r"\+\d+(-\d+)?(?=\.conf$)")
XEN_FILE_KEYS = ("kernel", "ramdisk", "xsm", "ucode", "dtb")

PE32_PLUS_MAGIC = 0x20B
PE32_MAGIC = 0x10B
SECTION_HEADER_SIZE = 40

# (section names, .config text or None) of an image, by the image's sha256:
# objcopy runs once per image.
_image_cache = {}


class NotBootable(Exception):
    pass


# ---------------------------------------------------------------- systemd-boot


def entry_id(file_name):
    """`xen-generation-3+2-1.conf` -> `xen-generation-3.conf`."""
    return BOOT_COUNTER.sub("", file_name)


# A disk folder, as the XBOOTLDR crash sweep lays one out: its ESP and its
# Extended Boot Loader partition side by side. systemd-boot reads entries from
# both (each entry's files from its own partition) and loader.conf from the
# ESP only.
DISK_PARTITIONS = ("ESP", "XBOOTLDR")


def partitions(root):
    """The partitions under `root`: the two of a disk folder, the ESP first,
    else `root` itself, an ESP."""
    root = Path(root)
    parts = [root / name for name in DISK_PARTITIONS]
    return parts if all(part.is_dir() for part in parts) else [root]


def entry_files(esp):
    """Entry id -> path of every `loader/entries/*.conf` regular file."""
    folder = Path(esp) / ENTRIES
    files = {}
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.name.endswith(".conf") and path.is_file():
                files[entry_id(path.name)] = path
    return files


def key_values(text):
    """`key value` lines as (key, value) pairs in file order."""
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        pairs.append((key, value.strip()))
    return pairs


def esp_file(esp, path, relative_to=""):
    """A path as a boot loader names it (`/EFI/x` or `\\EFI\\x`) on the ESP."""
    path = path.replace("\\", "/")
    if path.startswith("/"):
        return Path(esp) / path.lstrip("/")
    return Path(esp) / relative_to / path


def require_file(path, what):
    if path.is_symlink():
        raise NotBootable(f"{what} {path} is a symlink")
    if not path.is_file():
        raise NotBootable(f"{what} {path} does not exist")


# ---------------------------------------------------------------- PE


def pe_sections(data, name):
    """Checks that `data` is a complete PE image; returns its section names."""
    if len(data) < 0x40 or data[:2] != b"MZ":
        raise NotBootable(f"{name}: no MZ header")
    (pe_offset,) = struct.unpack_from("<I", data, 0x3C)
    if pe_offset + 24 > len(data) or data[pe_offset : pe_offset + 4] != b"PE\0\0":
        raise NotBootable(f"{name}: no PE signature")
    _machine, section_count, _, _, _, optional_size, _ = struct.unpack_from("<HHIIIHH", data, pe_offset + 4)
    optional = pe_offset + 24
    if optional + optional_size > len(data) or optional_size < 64:
        raise NotBootable(f"{name}: optional header truncated")
    (magic,) = struct.unpack_from("<H", data, optional)
    if magic not in (PE32_MAGIC, PE32_PLUS_MAGIC):
        raise NotBootable(f"{name}: optional header magic {magic:#x}")
    size_of_image, size_of_headers = struct.unpack_from("<II", data, optional + 56)
    table = optional + optional_size
    table_end = table + section_count * SECTION_HEADER_SIZE
    if table_end > size_of_headers or size_of_headers > len(data):
        raise NotBootable(f"{name}: section table ends at {table_end:#x}, headers at {size_of_headers:#x}, "
                          f"file is {len(data):#x} bytes")
    names = []
    ranges = []
    for index in range(section_count):
        offset = table + index * SECTION_HEADER_SIZE
        raw_name, virtual_size, virtual_address, raw_size, raw_pointer = struct.unpack_from("<8sIIII", data, offset)
        section = raw_name.rstrip(b"\0").decode("latin-1")
        names.append(section)
        if raw_size and raw_pointer + raw_size > len(data):
            raise NotBootable(f"{name}: section {section} raw data {raw_pointer:#x}+{raw_size:#x} "
                              f"beyond the end of the file ({len(data):#x})")
        end = virtual_address + (virtual_size or raw_size)
        if end > size_of_image:
            raise NotBootable(f"{name}: section {section} ends at {end:#x}, past SizeOfImage {size_of_image:#x}")
        ranges.append((virtual_address, end, section))
    ranges.sort()
    for (_, end, first), (start, _, second) in zip(ranges, ranges[1:]):
        if start < end:
            raise NotBootable(f"{name}: sections {first} and {second} overlap")
    return names


def read_image(path):
    """(section names, `.config` text) of a checked PE image; the text is
    None when it has no `.config`."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest in _image_cache:
        cached = _image_cache[digest]
        if isinstance(cached, NotBootable):
            raise cached
        return cached
    try:
        names = pe_sections(data, str(path))
        if ".config" not in names:
            _image_cache[digest] = (names, None)
            return _image_cache[digest]
        with tempfile.TemporaryDirectory(prefix="espcheck-") as scratch:
            out = Path(scratch) / "config"
            result = subprocess.run(
                ["objcopy", "-O", "binary", "--only-section=.config", str(path), str(out)],
                capture_output=True, text=True, check=False,
            )
            if result.returncode != 0 or not out.exists():
                raise NotBootable(f"{path}: objcopy cannot extract .config: {result.stderr.strip()}")
            config = out.read_bytes().rstrip(b"\0").decode("utf-8", errors="replace")
    except NotBootable as problem:
        _image_cache[digest] = problem
        raise
    _image_cache[digest] = (names, config)
    return _image_cache[digest]


# ---------------------------------------------------------------- Xen


def config_sections(text):
    """Xen's EFI configuration: section name -> {key: value}."""
    sections = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line.startswith(";"):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        elif current is not None and "=" in line:
            key, _, value = line.partition("=")
            current[key.strip()] = value.strip()
    return sections


def load_options(options):
    """(configuration file, section) named by Xen's load options, each None
    when not given. The first word is the image name, which Xen skips."""
    words = options.split()
    config_file = section = None
    index = 1
    while index < len(words):
        word = words[index]
        if word[0] in "-/":
            if word[1:].startswith("cfg="):
                config_file = word[5:]
            elif word[1:] == "cfg" and index + 1 < len(words):
                index += 1
                config_file = words[index]
        else:
            section = word
        index += 1
    return config_file, section


def name_candidates(image):
    """The configuration files Xen tries beside an image when no -cfg is
    given: the name cut at its last `.`, `-` or `_`, again and again, each
    with `.cfg` added."""
    name = image.name
    candidates = []
    while True:
        cut = max(name.rfind("."), name.rfind("-"), name.rfind("_"))
        if cut < 0:
            return candidates
        name = name[:cut]
        candidates.append(name + ".cfg")


def xen_configuration(esp, image, config_file, where):
    """(text, where it came from): the configuration Xen would use."""
    _, embedded = read_image(image)
    if embedded is not None:
        return embedded, ".config"
    image_folder = image.parent.relative_to(esp)
    if config_file is not None:
        path = esp_file(esp, config_file, image_folder)
        require_file(path, f"{where}: -cfg=")
        return path.read_text(errors="replace"), config_file
    for candidate in name_candidates(image):
        path = Path(esp) / image_folder / candidate
        if path.is_file() and not path.is_symlink():
            return path.read_text(errors="replace"), candidate
    raise NotBootable(f"{where}: {image.name} has no .config, no -cfg= and no configuration file beside it")


def check_xen_image(esp, image, options, where):
    config_file, chosen = load_options(options)
    text, origin = xen_configuration(esp, image, config_file, where)
    sections = config_sections(text)
    name = chosen or sections.get("global", {}).get("default")
    if not name:
        raise NotBootable(f"{where}: {origin} has no [global] default=")
    if name not in sections:
        raise NotBootable(f"{where}: {origin} has no section [{name}]")
    section = sections[name]
    if "kernel" not in section:
        raise NotBootable(f"{where}: section [{name}] has no kernel=")
    image_folder = image.parent.relative_to(esp)
    sections_in_image, _ = read_image(image)
    for key in XEN_FILE_KEYS:
        if key in section and f".{key}" not in sections_in_image:
            words = section[key].split()
            if not words:
                raise NotBootable(f"{where}: [{name}] {key}= is empty")
            require_file(esp_file(esp, words[0], image_folder), f"{where}: {key}=")


# ---------------------------------------------------------------- entries


def check_entry(esp, path):
    """Raises NotBootable when the entry at `path` would not boot."""
    esp = Path(esp)
    where = f"{ENTRIES}/{path.name}"
    if path.is_symlink():
        raise NotBootable(f"{where} is a symlink")
    pairs = key_values(path.read_text(errors="replace"))
    fields = {}
    for key, value in pairs:
        fields.setdefault(key, []).append(value)
    if "efi" in fields:
        image = esp_file(esp, fields["efi"][-1])
        require_file(image, f"{where}: efi")
        check_xen_image(esp, image, fields.get("options", [""])[-1], where)
    elif "linux" in fields:
        require_file(esp_file(esp, fields["linux"][-1]), f"{where}: linux")
        for initrd in fields.get("initrd", []):
            require_file(esp_file(esp, initrd), f"{where}: initrd")
    else:
        raise NotBootable(f"{where}: neither efi nor linux")


def entry_problems(esp):
    """Entry id -> why it does not boot (None when it boots). An id found on
    both partitions of a disk boots only when both entries do: systemd-boot
    may pick either."""
    problems = {}
    for partition in partitions(esp):
        for ident, path in entry_files(partition).items():
            try:
                check_entry(partition, path)
                problems.setdefault(ident, None)
            except NotBootable as problem:
                problems[ident] = str(problem)
    return problems


def bootable_entries(esp):
    """Ids of the entries that would boot."""
    return {ident for ident, problem in entry_problems(esp).items() if problem is None}


# ---------------------------------------------------------------- loader.conf


def loader_settings(esp):
    """The last `default` and `preferred` values of loader.conf (None when absent)."""
    path = partitions(esp)[0] / LOADER_CONF
    if path.is_symlink() or not path.is_file():
        raise NotBootable(f"{LOADER_CONF} is missing or not a regular file")
    settings = {"default": None, "preferred": None}
    for key, value in key_values(path.read_text(errors="replace")):
        if key in settings:
            settings[key] = value
    return settings


def matching_entries(pattern, idents):
    return sorted(i for i in idents if fnmatch.fnmatchcase(i, pattern)
                  or fnmatch.fnmatchcase(i.removesuffix(".conf"), pattern))


def default_problems(esp, status=None):
    """What is wrong with the default entry choice (empty when it boots).
    `status`: entry_problems(esp), when the caller has it already."""
    try:
        settings = loader_settings(esp)
    except NotBootable as problem:
        return [str(problem)]
    if status is None:
        status = entry_problems(esp)
    problems = []
    chosen = None
    if settings["preferred"] is not None:
        chosen = matching_entries(settings["preferred"], status)
        if not chosen:
            problems.append(f"loader.conf: preferred {settings['preferred']} matches no entry")
    if not chosen:
        if settings["default"] is None:
            problems.append("loader.conf: no default")
            return problems
        chosen = matching_entries(settings["default"], status)
        if not chosen:
            problems.append(f"loader.conf: default {settings['default']} matches no entry")
    for ident in chosen:
        if status[ident] is not None:
            problems.append(f"loader.conf: default entry {ident} does not boot: {status[ident]}")
    return problems


def problems(esp):
    """Everything that would not boot: the default choice and every Xen entry."""
    found = default_problems(esp)
    for ident, problem in sorted(entry_problems(esp).items()):
        if problem is not None and ident.startswith("xen-"):
            found.append(problem)
    return found


def main(argv):
    if len(argv) != 2:
        print(f"usage: {argv[0]} ESP", file=sys.stderr)
        return 2
    esp = argv[1]
    found = problems(esp)
    for problem in found:
        print(f"problem: {problem}")
    for ident in sorted(bootable_entries(esp)):
        print(f"bootable: {ident}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
