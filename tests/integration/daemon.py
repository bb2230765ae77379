"""Running `xen-boot-builder watch` as systemd would: with a NOTIFY_SOCKET
(an AF_UNIX datagram socket of the test's own, read as systemd reads it) and
stderr in a file read while it runs. Every wait is bounded by a deadline and
polls; nothing sleeps longer than one poll interval."""

import os
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from common import tool_argv, tool_environment

# Far above what any wait takes: a guard against a hang, not a timing.
DEADLINE = 30
POLL = 0.02
DEBOUNCE_MS = 200


def limit_open_files(count):
    resource.setrlimit(resource.RLIMIT_NOFILE, (count, count))


class Daemon:
    """One `watch` process. `messages` holds every notification datagram as a
    list of its KEY=VALUE lines, in arrival order. With `journal`, stderr is
    taken for the journal (JOURNAL_STREAM names its file). `prefix` (a list,
    or a function of the folder that holds the notification socket, giving
    one) runs the daemon through other programs. `rlimit_nofile` limits its
    open files."""

    def __init__(self, test, argv, env=None, prefix=(), pass_fds=(), journal=False, umask=-1, rlimit_nofile=None):
        self.test = test
        folder = Path(tempfile.mkdtemp(prefix="xbb-daemon-"))
        test.addCleanup(shutil.rmtree, folder, ignore_errors=True)
        self.socket_path = folder / "notify.sock"
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(str(self.socket_path))
        self.socket.setblocking(False)
        test.addCleanup(self.socket.close)
        self.messages = []
        self.stderr_path = folder / "stderr"
        environment = tool_environment()
        environment["NOTIFY_SOCKET"] = str(self.socket_path)
        environment.update(env or {})
        with open(self.stderr_path, "wb") as stderr:
            if journal:
                # What systemd sets when stderr is connected to the journal.
                info = os.fstat(stderr.fileno())
                environment["JOURNAL_STREAM"] = f"{info.st_dev}:{info.st_ino}"
            if callable(prefix):
                prefix = prefix(folder)
            self.process = subprocess.Popen(
                [*prefix, *tool_argv(argv)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=environment,
                pass_fds=pass_fds,
                umask=umask,
                preexec_fn=None if rlimit_nofile is None else lambda: limit_open_files(rlimit_nofile),
            )
        # The daemon's process: this one, unless `prefix` runs it as a child
        # (then the caller sets it).
        self.pid = self.process.pid
        test.addCleanup(self.kill)

    # ------------------------------------------------------------ reading

    def receive(self):
        while True:
            try:
                data = self.socket.recv(65536)
            except BlockingIOError:
                return
            self.messages.append(data.decode().splitlines())

    def values(self, key):
        """Every value sent for `key` (STATUS, READY, WATCHDOG...), in order."""
        self.receive()
        prefix = key + "="
        return [line[len(prefix):] for message in self.messages for line in message if line.startswith(prefix)]

    def statuses(self):
        return self.values("STATUS")

    def log(self):
        return self.stderr_path.read_text(errors="replace")

    def describe(self):
        self.receive()
        return f"exit {self.process.poll()}\nnotifications: {self.messages}\nstderr:\n{self.log()}"

    # ------------------------------------------------------------ waiting

    def wait_for(self, what, condition, deadline=DEADLINE):
        """Poll until condition() is true; fail naming `what` after `deadline` s."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            self.receive()
            result = condition()
            if result:
                return result
            if self.process.poll() is not None:
                self.receive()
                if condition():
                    return condition()
                self.test.fail(f"the daemon exited while waiting for {what}\n{self.describe()}")
            time.sleep(POLL)
        self.test.fail(f"no {what} within {deadline} s\n{self.describe()}")

    def wait_ready(self):
        self.wait_for("READY=1", lambda: "1" in self.values("READY"))

    def wait_status(self, after, what="a run", matching=lambda status: True):
        """The first STATUS sent after the first `after` ones that `matching` accepts."""

        def found():
            return next((status for status in self.statuses()[after:] if matching(status)), None)

        return self.wait_for(f"STATUS of {what}", found)

    def wait_quiet(self, seconds):
        """Wait until no notification but watchdog pings came for `seconds`
        (bounded by DEADLINE): the daemon has nothing left to do."""
        end = time.monotonic() + DEADLINE
        count, since = len(self.statuses()), time.monotonic()
        while time.monotonic() < end:
            now_count = len(self.statuses())
            if now_count != count:
                count, since = now_count, time.monotonic()
            elif time.monotonic() - since >= seconds:
                return
            time.sleep(POLL)
        self.test.fail(f"the daemon kept running builds for {DEADLINE} s\n{self.describe()}")

    # ------------------------------------------------------------ signals

    def signal(self, number):
        os.kill(self.pid, number)

    def stop(self):
        """SIGTERM, then the exit status (bounded wait)."""
        self.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            self.test.fail(f"no exit within {DEADLINE} s of SIGTERM\n{self.describe()}")

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def watch_argv(root, *options, debounce=DEBOUNCE_MS, verbosity="info"):
    return ["--root", root.path, "--esp", root.esp, "--debounce", debounce, *options, "watch", verbosity]


PROFILES = "nix/var/nix/profiles"


def profile_link(root, number):
    """The system profile's link of generation `number`."""
    return root.path / PROFILES / f"system-{number}-link"


class Generation:
    """A generation's two traces, as NixOS leaves them: its profile link and
    systemd-boot's entry. take() removes both (what garbage collection and
    systemd-boot's installer do); put_back() writes them as nix-env and
    systemd-boot's installer do (a link, an entry written to a temporary name
    and renamed)."""

    def __init__(self, root, number):
        self.root = root
        self.link = profile_link(root, number)
        self.target = os.readlink(self.link)
        self.entry = root.esp / "loader/entries" / root.entry(number)["entry"]
        self.text = self.entry.read_text()

    def take(self):
        self.link.unlink()
        self.entry.unlink()
        return self

    def put_back(self):
        os.symlink(self.target, self.link)
        temporary = self.entry.with_name(self.entry.name + ".tmp")
        temporary.write_text(self.text)
        temporary.rename(self.entry)


class KeepWriting:
    """A writer that never rests (with ... as writer): rewrites `path` every
    `every` seconds until the block ends. `writes` counts its writes."""

    def __init__(self, path, every):
        self.path = Path(path)
        self.every = every
        self.writes = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        while not self.done.is_set():
            self.path.write_text(f"# write {self.writes}\n")
            self.writes += 1
            self.done.wait(self.every)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *unused):
        self.done.set()
        self.thread.join()
