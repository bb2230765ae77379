"""Whole runs of the built tool on generated roots, as issues 9 and 18 ask:
per root size and layout, the first (cold) run beside `cp -a` + `sync` of the
bytes it wrote (wall and CPU time), and runs with nothing to change beside
`xen-boot-builder --version` runs interleaved with them; per root size, the
system calls of one unchanged run (`strace -f -c`). Prints Markdown tables,
then issue 18's targets with what this run measured, and writes every sample
to a JSON file; asserts nothing.

    run_bench.py MEASURE BINARY [--generations 10,100,1000] [--runs N]
                 [--dir /dev/shm] [--json FILE] [--strace /usr/bin/strace]

MEASURE is the launcher built from measure.cpp (wall time, ru_maxrss and
/proc/<pid>/io of one process). Defaults also come from the environment:
XBB_BENCH_GENERATIONS, XBB_BENCH_RUNS, XBB_BENCH_DIR, XBB_DEPS_DIR.

--strace names the strace that counts the system calls (/usr/bin/strace).

Roots: `fixtures/mkroot.py --generations G --specialisation debug`, then the
specialisation entries of all but the newest G/10 generations are removed, so
G generations give G + G/10 entries (100 -> 110, the issue's mix).
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2]
MKROOT = SOURCE / "fixtures" / "mkroot.py"
XEN_417 = "xen-hypervisor-4.17-amd64/boot/xen-4.17-amd64.efi"
XEN_420 = "xen-hypervisor-4.20-amd64/boot/xen-4.20-amd64.efi"
SPECIALISATION = "debug"
LAYOUTS = ("auto", "unified", "shared")  # auto: the default
UNCHANGED_PER_ESP = 3
STRACE_LAYOUT = "auto"  # the layout whose unchanged run strace counts
TOP_SYSCALLS = 5
CLUSTER = 4096  # FAT32 cluster size mkfs.fat picks for a 512 MiB ESP
MIB = 1 << 20


# ---------------------------------------------------------------- processes


@dataclass
class Sample:
    wall_ms: float
    maxrss_kib: int
    user_ms: float
    system_ms: float
    wchar: int
    syscw: int

    @property
    def cpu_ms(self):
        return self.user_ms + self.system_ms


def measure(launcher, argv, cwd=None):
    """One process under the launcher; its figures, or exit on failure."""
    done = subprocess.run([launcher, *map(str, argv)], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"run_bench: {launcher} failed: {done.stderr.strip()}")
    fields = dict(item.split("=", 1) for item in done.stdout.split())
    if fields["exit"] != "0":
        sys.exit(f"run_bench: {' '.join(map(str, argv))} exited {fields['exit']}:\n{done.stderr}")
    return Sample(
        wall_ms=int(fields["wall_ns"]) / 1e6,
        maxrss_kib=int(fields["maxrss_kib"]),
        user_ms=int(fields["utime_us"]) / 1e3,
        system_ms=int(fields["stime_us"]) / 1e3,
        wchar=int(fields["wchar"]),
        syscw=int(fields["syscw"]),
    )


# ---------------------------------------------------------------- ESP files


def snapshot(esp):
    """Every regular file under `esp`: relative path -> (inode, size, mtime)."""
    files = {}
    for folder, _, names in os.walk(esp):
        for name in names:
            path = Path(folder) / name
            status = path.lstat()
            files[str(path.relative_to(esp))] = (status.st_ino, status.st_size, status.st_mtime_ns)
    return files


def written(before, after):
    """Files that are new or were replaced or modified between two snapshots."""
    return sorted(path for path, state in after.items() if before.get(path) != state)


def clusters(size):
    return -(-size // CLUSTER) * CLUSTER


# ---------------------------------------------------------------- roots


def make_root(root, generations, xen_efi, specialised):
    """A root of `generations` generations; the newest `specialised` of them
    keep their specialisation entry. Returns the number of source entries."""
    subprocess.run(
        [sys.executable, MKROOT, root, "--generations", str(generations), "--xen-efi", xen_efi,
         "--specialisation", SPECIALISATION],
        check=True, stdout=subprocess.DEVNULL)
    entries = root / "boot" / "loader" / "entries"
    for generation in range(1, generations - specialised + 1):
        (entries / f"nixos-generation-{generation}-specialisation-{SPECIALISATION}.conf").unlink()
    return generations + specialised


def fresh_esp(template, scratch, name):
    esp = scratch / name
    shutil.copytree(template / "boot", esp, symlinks=True)
    return esp


def tool_argv(binary, root, esp, layout, *extra):
    return [binary, "--root", root, "--esp", esp, "--layout", layout, *extra, "quiet"]


# ---------------------------------------------------------------- benchmark


def syscalls(args, argv, scratch):
    """`strace -f -c` of one process: system call -> number of calls, and the
    total, from strace's table (columns asked for: calls, errors, name)."""
    table = scratch / "strace.txt"
    done = subprocess.run([args.strace, "-f", "-c", "-U", "calls,errors,name", "-S", "calls",
                           "-o", table, *map(str, argv)], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"run_bench: strace {' '.join(map(str, argv))} exited {done.returncode}:\n"
                 f"{done.stderr}")
    counts = {}
    for line in table.read_text().splitlines():
        fields = line.split()
        if fields and fields[0].isdigit():
            counts[fields[-1]] = int(fields[0])
    table.unlink()
    total = counts.pop("total")
    return {"total": total, "calls": counts}


def median_min(samples):
    return statistics.median(samples), min(samples)


def bench_layout(args, template, scratch, layout, count_syscalls):
    """`args.runs` cold runs on fresh ESP copies, each followed by `cp -a` +
    `sync -f` of the files it wrote and by unchanged runs, each of these
    after a `--version` run. With `count_syscalls`, one more unchanged run
    under strace on the last ESP."""
    cold, copy, copy_cpu, copy_samples, unchanged, version = [], [], [], [], [], []
    cold_files = cold_bytes = unchanged_files = 0
    esp_bytes = esp_clusters = efi_xen_bytes = 0
    strace = None
    for run in range(args.runs):
        esp = fresh_esp(template, scratch, f"esp-{layout}-{run}")
        before = snapshot(esp)
        cold.append(measure(args.measure, tool_argv(args.binary, template, esp, layout)))
        after = snapshot(esp)
        changed = written(before, after)
        cold_files = len(changed)
        cold_bytes = sum(after[path][1] for path in changed)
        new = [path for path in after if path not in before]
        esp_bytes = sum(after[path][1] for path in new)
        esp_clusters = sum(clusters(after[path][1]) for path in new)
        efi_xen_bytes = sum(after[path][1] for path in new if path.startswith("EFI/xen/"))

        target = scratch / f"cp-{layout}-{run}"
        target.mkdir()
        copy_run = measure(args.measure, [shutil.which("cp"), "-a", "--parents", *changed, target],
                           cwd=esp)
        sync_run = measure(args.measure, [shutil.which("sync"), "--file-system", target])
        copy.append(copy_run.wall_ms + sync_run.wall_ms)
        copy_cpu.append(copy_run.cpu_ms + sync_run.cpu_ms)
        copy_samples.append({"cp": vars(copy_run), "sync": vars(sync_run)})
        shutil.rmtree(target)

        for _ in range(UNCHANGED_PER_ESP):
            settled = snapshot(esp)
            version.append(measure(args.measure, [args.binary, "--version"]))
            unchanged.append(measure(args.measure, tool_argv(args.binary, template, esp, layout)))
            unchanged_files = max(unchanged_files, len(written(settled, snapshot(esp))))
        if count_syscalls and run == args.runs - 1:
            settled = snapshot(esp)
            strace = syscalls(args, tool_argv(args.binary, template, esp, layout), scratch)
            strace["files_written"] = len(written(settled, snapshot(esp)))
        shutil.rmtree(esp)
    unchanged_ms, unchanged_min_ms = median_min([s.wall_ms for s in unchanged])
    version_ms, version_min_ms = median_min([s.wall_ms for s in version])
    return {
        "layout": layout,
        "cold_ms": statistics.median(s.wall_ms for s in cold),
        "copy_sync_ms": statistics.median(copy),
        "cold_cpu_ms": statistics.median(s.cpu_ms for s in cold),
        "copy_sync_cpu_ms": statistics.median(copy_cpu),
        "unchanged_ms": unchanged_ms,
        "unchanged_min_ms": unchanged_min_ms,
        "version_ms": version_ms,
        "version_min_ms": version_min_ms,
        "cold_files_written": cold_files,
        "cold_file_bytes": cold_bytes,
        "cold_wchar": statistics.median(s.wchar for s in cold),
        "unchanged_files_written": unchanged_files,
        "unchanged_wchar": max(s.wchar for s in unchanged),
        "cold_peak_rss_kib": max(s.maxrss_kib for s in cold),
        "unchanged_peak_rss_kib": max(s.maxrss_kib for s in unchanged),
        "esp_bytes": esp_bytes,
        "esp_cluster_bytes": esp_clusters,
        "efi_xen_bytes": efi_xen_bytes,
        "unchanged_syscalls": strace,
        "samples": {
            "cold": [vars(s) for s in cold],
            "copy_sync": copy_samples,
            "unchanged": [vars(s) for s in unchanged],
            "version": [vars(s) for s in version],
        },
    }


def bench_root(args, scratch, generations):
    template = scratch / f"root-{generations}"
    entries = make_root(template, generations, args.deps / XEN_417, max(1, generations // 10))
    rows = []
    for layout in LAYOUTS:
        row = bench_layout(args, template, scratch, layout, layout == STRACE_LAYOUT)
        row.update(generations=generations, entries=entries)
        rows.append(row)
    shutil.rmtree(template)
    return rows


def per_entry_420(args, scratch):
    """ESP bytes per entry with Debian 13's Xen 4.20 image (26 of its 29 MB are
    debug sections): one cold run per layout on a root of ten entries."""
    generations = 10
    template = scratch / "root-4.20"
    subprocess.run([sys.executable, MKROOT, template, "--generations", str(generations),
                    "--xen-efi", args.deps / XEN_420], check=True, stdout=subprocess.DEVNULL)
    rows = []
    for layout, extra in (("unified", ()), ("unified", ("--keep-debug-sections",)),
                          ("shared", ())):
        esp = fresh_esp(template, scratch, "esp-4.20")
        before = snapshot(esp)
        measure(args.measure, tool_argv(args.binary, template, esp, layout, *extra))
        after = snapshot(esp)
        new = {path: after[path][1] for path in after if path not in before}
        images = {path: size for path, size in new.items() if path.endswith(".efi")}
        shared_images = images if layout == "shared" else {}
        per_entry = [size for path, size in new.items()
                     if path not in shared_images and not path.endswith(".json")]
        rows.append({
            "layout": " ".join([layout, *extra]),
            "entries": generations,
            "image_bytes": max(images.values()),
            "shared_image_bytes": sum(shared_images.values()),
            "per_entry_bytes": sum(per_entry) / generations,
            "per_entry_cluster_bytes": sum(map(clusters, per_entry)) / generations,
            "files": sorted(new),
        })
        shutil.rmtree(esp)
    shutil.rmtree(template)
    return rows


# ---------------------------------------------------------------- report


def machine(bench_dir):
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                  if line.startswith("model name")), platform.processor())
    memory_kib = next(int(line.split()[1]) for line in open("/proc/meminfo")
                      if line.startswith("MemTotal:"))
    # The first line: findmnt lists every mount stacked on the target.
    fs_type = subprocess.run(["findmnt", "--noheadings", "--output", "FSTYPE", "--target", bench_dir],
                             capture_output=True, text=True, check=True).stdout.split("\n")[0].strip()
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "memory_gib": round(memory_kib / (1 << 20), 1),
        "kernel": platform.release(),
        "bench_dir": str(bench_dir),
        "bench_fs": fs_type,
    }


def mib(size):
    return f"{size / MIB:.2f}"


def row_of(result, entries, layout):
    return next((row for row in result["rows"]
                 if row["entries"] == entries and row["layout"] == layout), None)


def worst(result, entries, figure):
    """The row of `entries` entries with the largest `figure(row)`, or None."""
    rows = [row for row in result["rows"] if row["entries"] == entries]
    return max(rows, key=figure) if rows else None


def targets(result):
    """Issue 18's targets: figure, what this run measured (None: not
    measured), the target as text, and whether it is met."""
    def ms(value):
        return f"{value:.1f} ms"

    def ratio(value):
        return f"{value:.2f}x"

    def unchanged_version(row):
        return row["unchanged_ms"] / row["version_ms"]

    def cold_wall(row):
        return row["cold_ms"] / row["copy_sync_ms"]

    def cold_cpu(row):
        return row["cold_cpu_ms"] / row["copy_sync_cpu_ms"]

    def peak(row):
        return max(row["cold_peak_rss_kib"], row["unchanged_peak_rss_kib"]) / 1024

    version = [sample["wall_ms"] for row in result["rows"] for sample in row["samples"]["version"]]
    table = []

    def add(figure, value, shown, limit, strict, target):
        if value is None:
            table.append({"figure": figure, "measured": None, "target": target, "met": None})
            return
        met = value < limit if strict else value <= limit
        table.append({"figure": figure, "measured": shown(value), "value": value,
                      "target": target, "met": met})

    def add_worst(figure, entries, value, shown, limit, strict, target):
        row = worst(result, entries, value)
        add(f"{figure} ({row['layout']}, the worst layout)" if row else figure,
            value(row) if row else None, shown, limit, strict, target)

    def add_layout(figure, entries, layout, value, shown, limit, strict, target):
        row = row_of(result, entries, layout)
        add(figure, value(row) if row else None, shown, limit, strict, target)

    add_worst("unchanged, 110 entries", 110, lambda row: row["unchanged_ms"], ms, 12, True,
              "< 12 ms")
    add_worst("unchanged / `--version`, 110 entries", 110, unchanged_version, ratio, 1.5, False,
              "<= 1.5x")
    add_layout("unchanged / `--version`, 110 entries (auto, the default layout)", 110, "auto",
               unchanged_version, ratio, 1.5, False, "<= 1.5x")
    add_worst("unchanged, 1,100 entries", 1100, lambda row: row["unchanged_ms"], ms, 40, True,
              "< 40 ms")
    add_layout(f"system calls of an unchanged run, 110 entries ({STRACE_LAYOUT})", 110,
               STRACE_LAYOUT, lambda row: row["unchanged_syscalls"]["total"],
               lambda value: f"{value:,}", 1000, True, "< 1,000")
    add(f"`--version` (median of its {len(version)} runs)",
        statistics.median(version) if version else None, ms, 4, False, "<= 4 ms")
    add_layout("cold, unified, 110 entries: wall time / `cp -a` + `sync`", 110, "unified",
               cold_wall, ratio, 1.3, False, "<= 1.3x")
    add_layout("cold, unified, 110 entries: CPU time / `cp -a` + `sync`", 110, "unified",
               cold_cpu, ratio, 2, False, "<= 2x")
    add_layout("cold, auto, 110 entries: wall time / `cp -a` + `sync`", 110, "auto", cold_wall,
               ratio, 2, False, "<= 2x")
    add_worst("peak RSS, 1,100 entries, cold or unchanged", 1100, peak,
              lambda value: f"{value:.1f} MiB", 24, True, "< 24 MiB")
    return table


def top_calls(counts):
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_SYSCALLS]
    return ", ".join(f"{name} {calls:,}" for name, calls in ranked)


def print_tables(result):
    info = result["machine"]
    print(f"\n{info['cpus']} CPUs ({info['cpu_model']}), {info['memory_gib']} GiB, "
          f"Linux {info['kernel']}; roots and ESPs on {info['bench_dir']} ({info['bench_fs']}); "
          f"load average {result['load_before']:.2f} before, {result['load_after']:.2f} after; "
          f"medians of {result['runs']} cold runs and {result['runs'] * UNCHANGED_PER_ESP} "
          f"unchanged runs, each unchanged run after a `--version` run; Xen 4.17 image\n")
    print("| generations (entries) | layout | cold ms | `cp -a` + `sync` ms | wall ratio "
          "| cold CPU ms | `cp -a` + `sync` CPU ms | CPU ratio "
          "| unchanged ms: median, min | `--version` ms: median, min | unchanged / `--version` |")
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for row in result["rows"]:
        print(f"| {row['generations']} ({row['entries']}) | {row['layout']} "
              f"| {row['cold_ms']:.0f} | {row['copy_sync_ms']:.0f} "
              f"| {row['cold_ms'] / row['copy_sync_ms']:.2f}x "
              f"| {row['cold_cpu_ms']:.0f} | {row['copy_sync_cpu_ms']:.0f} "
              f"| {row['cold_cpu_ms'] / row['copy_sync_cpu_ms']:.2f}x "
              f"| {row['unchanged_ms']:.1f}, {row['unchanged_min_ms']:.1f} "
              f"| {row['version_ms']:.1f}, {row['version_min_ms']:.1f} "
              f"| {row['unchanged_ms'] / row['version_ms']:.2f}x |")
    print("\n| generations (entries) | layout | cold writes: files, MiB "
          "| unchanged writes: files, bytes | peak RSS MiB: cold, unchanged "
          "| ESP MiB: bytes, 4 KiB clusters |")
    print("|---|---|--:|--:|--:|--:|")
    for row in result["rows"]:
        print(f"| {row['generations']} ({row['entries']}) | {row['layout']} "
              f"| {row['cold_files_written']}, {mib(row['cold_wchar'])} "
              f"| {row['unchanged_files_written']}, {row['unchanged_wchar']:.0f} "
              f"| {row['cold_peak_rss_kib'] / 1024:.1f}, {row['unchanged_peak_rss_kib'] / 1024:.1f} "
              f"| {mib(row['esp_bytes'])}, {mib(row['esp_cluster_bytes'])} |")
    print(f"\nSystem calls (`strace -f -c`) of one unchanged run in the {STRACE_LAYOUT} layout "
          f"per root size, beside `--version`:\n")
    print(f"| run | system calls | the {TOP_SYSCALLS} most frequent |")
    print("|---|--:|---|")
    counted = result["version_syscalls"]
    print(f"| `--version` | {counted['total']:,} | {top_calls(counted['calls'])} |")
    for row in result["rows"]:
        counted = row["unchanged_syscalls"]
        if counted:
            print(f"| unchanged, {row['generations']} generations ({row['entries']} entries) "
                  f"| {counted['total']:,} | {top_calls(counted['calls'])} |")
    print("\nDebian 13's Xen 4.20 image, 10 entries, per entry (a shared image counted once, "
          "apart):\n")
    print("| layout | image bytes | shared image bytes | bytes per entry | per entry in 4 KiB clusters |")
    print("|---|--:|--:|--:|--:|")
    for row in result["xen_420"]:
        print(f"| {row['layout']} | {row['image_bytes']} | {row['shared_image_bytes']} "
              f"| {row['per_entry_bytes']:.0f} | {row['per_entry_cluster_bytes']:.0f} |")
    print("\nIssue 18's targets, from this run:\n")
    print("| figure | measured | target | met |")
    print("|---|--:|---|---|")
    for target in result["targets"]:
        measured = target["measured"] or "not measured"
        met = "-" if target["met"] is None else ("yes" if target["met"] else "no")
        print(f"| {target['figure']} | {measured} | {target['target']} | {met} |")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("measure", type=Path, help="the launcher built from measure.cpp")
    parser.add_argument("binary", type=Path, help="xen-boot-builder")
    parser.add_argument("--generations", default=os.environ.get("XBB_BENCH_GENERATIONS",
                                                                "10,100,1000"))
    parser.add_argument("--runs", type=int, default=int(os.environ.get("XBB_BENCH_RUNS", "5")))
    parser.add_argument("--dir", type=Path, default=Path(os.environ.get("XBB_BENCH_DIR",
                                                                        "/dev/shm")))
    parser.add_argument("--json", type=Path, help="also write every figure and sample here")
    parser.add_argument("--strace", type=Path, default=Path("/usr/bin/strace"),
                        help="counts the system calls of an unchanged run")
    parser.add_argument("--deps", type=Path, default=Path(os.environ.get(
        "XBB_DEPS_DIR", SOURCE / ".cache" / "deps")))
    args = parser.parse_args()
    if not os.access(args.strace, os.X_OK):
        parser.error(f"{args.strace}: no strace there (.ci/setup installs it); --strace names one")
    args.generations = [int(item) for item in args.generations.split(",") if item]
    args.measure = args.measure.resolve()
    args.binary = args.binary.resolve()
    return args


def main():
    args = parse_args()
    result = {"machine": machine(args.dir), "runs": args.runs,
              "load_before": os.getloadavg()[0], "rows": []}
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="xbb-bench-", dir=args.dir) as scratch:
        for generations in args.generations:
            result["rows"] += bench_root(args, Path(scratch), generations)
        result["xen_420"] = per_entry_420(args, Path(scratch))
        result["version_syscalls"] = syscalls(args, [args.binary, "--version"], Path(scratch))
    result["load_after"] = os.getloadavg()[0]
    result["seconds"] = time.monotonic() - start
    result["targets"] = targets(result)
    print_tables(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nEvery sample: {args.json}")


main()
