/* crashpoint: an LD_PRELOAD shim that simulates a crash, or a full disk, at
 * one chosen mutating file system call of a process.
 *
 * Counted calls ("crash points"): open/open64/openat/openat64/creat/creat64
 * (and glibc's fortified __open_2/__openat_2) when they open for writing or
 * create; write/pwrite/pwrite64/writev/pwritev on file descriptors above 2;
 * rename/renameat/renameat2; unlink/unlinkat; mkdir/mkdirat;
 * fsync/fdatasync/syncfs; ftruncate/ftruncate64.
 *
 * Environment:
 *   XBB_CRASH_AT=k       the k-th counted call does not happen: the process
 *                        ends with _exit(137) instead. A write (write, pwrite,
 *                        writev) is torn first: half of its bytes are written,
 *                        then the process ends.
 *   XBB_ENOSPC_AT=k      the k-th write call and every later one (counting
 *                        write calls only) fail with ENOSPC, as when another
 *                        writer fills the file system.
 *   XBB_CRASH_COUNT=FILE at normal exit, writes "<counted calls> <write calls>\n"
 *                        to FILE.
 *   XBB_CRASH_TRACE=FILE appends one line per counted call: "<k> <call> <path or fd>".
 *   XBB_STALL_AT=k with XBB_STALL_FILE=FILE: before the k-th counted call,
 *                        creates FILE and waits until it is removed (so that a
 *                        test can run something while this process is stopped
 *                        at a known point).
 *
 * The hot path allocates nothing: counters are atomics, messages are formatted
 * into stack buffers and written with the raw system call, and the real
 * functions are found once with dlsym(RTLD_NEXT).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define CRASH_STATUS 137

static long crash_at;     /* 0: never */
static long enospc_at;    /* 0: never */
static long calls;        /* counted calls so far */
static long write_calls;  /* counted write calls so far */
static long stall_at;     /* 0: never */
static int trace_fd = -1;
static char count_file[4096];
static char stall_file[4096];

/* ---------------------------------------------------------------- helpers */

static long env_number(const char *name) {
  const char *text = getenv(name);
  if (text == NULL || *text == '\0') return 0;
  char *end = NULL;
  long value = strtol(text, &end, 10);
  if (*end != '\0' || value < 0) {
    static const char message[] = "crashpoint: malformed number in an XBB_* variable\n";
    syscall(SYS_write, 2, message, sizeof message - 1);
    syscall(SYS_exit_group, 127);
  }
  return value;
}

static void raw_write_all(int fd, const char *bytes, size_t size) {
  while (size > 0) {
    long n = syscall(SYS_write, fd, bytes, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    bytes += n;
    size -= (size_t)n;
  }
}

static void trace(long k, const char *call, const char *path, int fd) {
  if (trace_fd < 0) return;
  char line[4200];
  int n = path != NULL ? snprintf(line, sizeof line, "%ld %s %s\n", k, call, path)
                       : snprintf(line, sizeof line, "%ld %s fd=%d\n", k, call, fd);
  if (n > 0) raw_write_all(trace_fd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* Announces the stall by creating stall_file, then waits for its removal. */
static void stall(void) {
  int fd = (int)syscall(SYS_openat, AT_FDCWD, stall_file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  syscall(SYS_close, fd);
  const struct timespec pause = {0, 10 * 1000 * 1000};
  while (syscall(SYS_faccessat, AT_FDCWD, stall_file, F_OK, 0) == 0) syscall(SYS_nanosleep, &pause, NULL);
}

/* Counts one mutating call and returns its number. */
static long count_call(const char *call, const char *path, int fd) {
  long k = __atomic_add_fetch(&calls, 1, __ATOMIC_SEQ_CST);
  trace(k, call, path, fd);
  if (stall_at != 0 && k == stall_at && stall_file[0] != '\0') stall();
  return k;
}

static int is_crash_point(long k) { return crash_at != 0 && k == crash_at; }

__attribute__((noreturn)) static void crash(void) {
  for (;;) syscall(SYS_exit_group, CRASH_STATUS);
}

static int opens_for_writing(int flags) {
  return (flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC)) != 0 || (flags & O_TMPFILE) == O_TMPFILE;
}

static int needs_mode(int flags) { return (flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE; }

#define DECLARE_REAL(ret, name, ...) static ret (*real_##name)(__VA_ARGS__)
#define RESOLVE(name)                                                   \
  do {                                                                  \
    if (real_##name == NULL) {                                          \
      *(void **)(&real_##name) = dlsym(RTLD_NEXT, #name);               \
      if (real_##name == NULL) {                                        \
        static const char message[] = "crashpoint: cannot find " #name "\n"; \
        syscall(SYS_write, 2, message, sizeof message - 1);             \
        syscall(SYS_exit_group, 127);                                   \
      }                                                                 \
    }                                                                   \
  } while (0)

DECLARE_REAL(int, open, const char *, int, ...);
DECLARE_REAL(int, open64, const char *, int, ...);
DECLARE_REAL(int, openat, int, const char *, int, ...);
DECLARE_REAL(int, openat64, int, const char *, int, ...);
DECLARE_REAL(int, __open_2, const char *, int);
DECLARE_REAL(int, __openat_2, int, const char *, int);
DECLARE_REAL(int, creat, const char *, mode_t);
DECLARE_REAL(int, creat64, const char *, mode_t);
DECLARE_REAL(ssize_t, write, int, const void *, size_t);
DECLARE_REAL(ssize_t, pwrite, int, const void *, size_t, off_t);
DECLARE_REAL(ssize_t, pwrite64, int, const void *, size_t, off_t);
DECLARE_REAL(ssize_t, writev, int, const struct iovec *, int);
DECLARE_REAL(ssize_t, pwritev, int, const struct iovec *, int, off_t);
DECLARE_REAL(int, rename, const char *, const char *);
DECLARE_REAL(int, renameat, int, const char *, int, const char *);
DECLARE_REAL(int, renameat2, int, const char *, int, const char *, unsigned int);
DECLARE_REAL(int, unlink, const char *);
DECLARE_REAL(int, unlinkat, int, const char *, int);
DECLARE_REAL(int, mkdir, const char *, mode_t);
DECLARE_REAL(int, mkdirat, int, const char *, mode_t);
DECLARE_REAL(int, fsync, int);
DECLARE_REAL(int, fdatasync, int);
DECLARE_REAL(int, syncfs, int);
DECLARE_REAL(int, ftruncate, int, off_t);
DECLARE_REAL(int, ftruncate64, int, off_t);

__attribute__((constructor)) static void crashpoint_init(void) {
  crash_at = env_number("XBB_CRASH_AT");
  enospc_at = env_number("XBB_ENOSPC_AT");
  stall_at = env_number("XBB_STALL_AT");
  const char *count = getenv("XBB_CRASH_COUNT");
  if (count != NULL && strlen(count) < sizeof count_file) strcpy(count_file, count);
  const char *stall_path = getenv("XBB_STALL_FILE");
  if (stall_path != NULL && strlen(stall_path) < sizeof stall_file) strcpy(stall_file, stall_path);
  const char *trace_path = getenv("XBB_CRASH_TRACE");
  if (trace_path != NULL && *trace_path != '\0') {
    trace_fd = (int)syscall(SYS_openat, AT_FDCWD, trace_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  }
  /* Children (none expected) must not inherit the crash point. */
  unsetenv("XBB_CRASH_AT");
  unsetenv("XBB_ENOSPC_AT");
  unsetenv("XBB_CRASH_COUNT");
  unsetenv("XBB_CRASH_TRACE");
  unsetenv("XBB_STALL_AT");
  unsetenv("XBB_STALL_FILE");
}

__attribute__((destructor)) static void crashpoint_report(void) {
  if (count_file[0] == '\0') return;
  int fd = (int)syscall(SYS_openat, AT_FDCWD, count_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  char line[64];
  int n = snprintf(line, sizeof line, "%ld %ld\n", __atomic_load_n(&calls, __ATOMIC_SEQ_CST),
                   __atomic_load_n(&write_calls, __ATOMIC_SEQ_CST));
  if (n > 0) raw_write_all(fd, line, (size_t)n);
  syscall(SYS_close, fd);
}

/* ---------------------------------------------------------------- opens */

/* Every open funnels through here: count it when it writes or creates. */
static void before_open(const char *call, const char *path, int flags) {
  if (!opens_for_writing(flags)) return;
  if (is_crash_point(count_call(call, path, -1))) crash();
}

#define OPEN_WRAPPER(name)                           \
  int name(const char *path, int flags, ...) {        \
    mode_t mode = 0;                                  \
    if (needs_mode(flags)) {                          \
      va_list args;                                   \
      va_start(args, flags);                          \
      mode = va_arg(args, mode_t);                    \
      va_end(args);                                   \
    }                                                 \
    RESOLVE(name);                                    \
    before_open(#name, path, flags);                  \
    return real_##name(path, flags, mode);            \
  }

#define OPENAT_WRAPPER(name)                                \
  int name(int dirfd, const char *path, int flags, ...) {    \
    mode_t mode = 0;                                         \
    if (needs_mode(flags)) {                                 \
      va_list args;                                          \
      va_start(args, flags);                                 \
      mode = va_arg(args, mode_t);                           \
      va_end(args);                                          \
    }                                                        \
    RESOLVE(name);                                           \
    before_open(#name, path, flags);                         \
    return real_##name(dirfd, path, flags, mode);            \
  }

OPEN_WRAPPER(open)
OPEN_WRAPPER(open64)
OPENAT_WRAPPER(openat)
OPENAT_WRAPPER(openat64)

int __open_2(const char *path, int flags) {
  RESOLVE(__open_2);
  before_open("__open_2", path, flags);
  return real___open_2(path, flags);
}

int __openat_2(int dirfd, const char *path, int flags) {
  RESOLVE(__openat_2);
  before_open("__openat_2", path, flags);
  return real___openat_2(dirfd, path, flags);
}

int creat(const char *path, mode_t mode) {
  RESOLVE(creat);
  before_open("creat", path, O_CREAT | O_WRONLY | O_TRUNC);
  return real_creat(path, mode);
}

int creat64(const char *path, mode_t mode) {
  RESOLVE(creat64);
  before_open("creat64", path, O_CREAT | O_WRONLY | O_TRUNC);
  return real_creat64(path, mode);
}

/* ---------------------------------------------------------------- writes */

enum write_fate { WRITE_NORMALLY, WRITE_TORN, WRITE_NO_SPACE };

static enum write_fate before_write(const char *call, int fd) {
  if (fd <= 2) return WRITE_NORMALLY;
  long k = count_call(call, NULL, fd);
  long w = __atomic_add_fetch(&write_calls, 1, __ATOMIC_SEQ_CST);
  if (is_crash_point(k)) return WRITE_TORN;
  if (enospc_at != 0 && w >= enospc_at) return WRITE_NO_SPACE;
  return WRITE_NORMALLY;
}

ssize_t write(int fd, const void *bytes, size_t size) {
  RESOLVE(write);
  switch (before_write("write", fd)) {
    case WRITE_TORN:
      real_write(fd, bytes, size / 2);
      crash();
    case WRITE_NO_SPACE:
      errno = ENOSPC;
      return -1;
    case WRITE_NORMALLY:
      break;
  }
  return real_write(fd, bytes, size);
}

#define PWRITE_WRAPPER(name)                                         \
  ssize_t name(int fd, const void *bytes, size_t size, off_t offset) { \
    RESOLVE(name);                                                    \
    switch (before_write(#name, fd)) {                                \
      case WRITE_TORN:                                                \
        real_##name(fd, bytes, size / 2, offset);                     \
        crash();                                                      \
      case WRITE_NO_SPACE:                                            \
        errno = ENOSPC;                                               \
        return -1;                                                    \
      case WRITE_NORMALLY:                                            \
        break;                                                        \
    }                                                                 \
    return real_##name(fd, bytes, size, offset);                      \
  }

PWRITE_WRAPPER(pwrite)
PWRITE_WRAPPER(pwrite64)

/* Writes the first half of the bytes an iovec array describes. */
static void write_half_of(int fd, const struct iovec *vector, int count, off_t offset, int positioned) {
  size_t total = 0;
  for (int i = 0; i < count; ++i) total += vector[i].iov_len;
  size_t left = total / 2;
  for (int i = 0; i < count && left > 0; ++i) {
    size_t part = vector[i].iov_len < left ? vector[i].iov_len : left;
    if (positioned) {
      RESOLVE(pwrite);
      real_pwrite(fd, vector[i].iov_base, part, offset);
      offset += (off_t)part;
    } else {
      RESOLVE(write);
      real_write(fd, vector[i].iov_base, part);
    }
    left -= part;
  }
}

ssize_t writev(int fd, const struct iovec *vector, int count) {
  RESOLVE(writev);
  switch (before_write("writev", fd)) {
    case WRITE_TORN:
      write_half_of(fd, vector, count, 0, 0);
      crash();
    case WRITE_NO_SPACE:
      errno = ENOSPC;
      return -1;
    case WRITE_NORMALLY:
      break;
  }
  return real_writev(fd, vector, count);
}

ssize_t pwritev(int fd, const struct iovec *vector, int count, off_t offset) {
  RESOLVE(pwritev);
  switch (before_write("pwritev", fd)) {
    case WRITE_TORN:
      write_half_of(fd, vector, count, offset, 1);
      crash();
    case WRITE_NO_SPACE:
      errno = ENOSPC;
      return -1;
    case WRITE_NORMALLY:
      break;
  }
  return real_pwritev(fd, vector, count, offset);
}

/* ---------------------------------------------------------------- names */

static void before_call(const char *call, const char *path, int fd) {
  if (is_crash_point(count_call(call, path, fd))) crash();
}

int rename(const char *from, const char *to) {
  RESOLVE(rename);
  before_call("rename", to, -1);
  return real_rename(from, to);
}

int renameat(int from_dir, const char *from, int to_dir, const char *to) {
  RESOLVE(renameat);
  before_call("renameat", to, -1);
  return real_renameat(from_dir, from, to_dir, to);
}

int renameat2(int from_dir, const char *from, int to_dir, const char *to, unsigned int flags) {
  RESOLVE(renameat2);
  before_call("renameat2", to, -1);
  return real_renameat2(from_dir, from, to_dir, to, flags);
}

int unlink(const char *path) {
  RESOLVE(unlink);
  before_call("unlink", path, -1);
  return real_unlink(path);
}

int unlinkat(int dirfd, const char *path, int flags) {
  RESOLVE(unlinkat);
  before_call("unlinkat", path, -1);
  return real_unlinkat(dirfd, path, flags);
}

int mkdir(const char *path, mode_t mode) {
  RESOLVE(mkdir);
  before_call("mkdir", path, -1);
  return real_mkdir(path, mode);
}

int mkdirat(int dirfd, const char *path, mode_t mode) {
  RESOLVE(mkdirat);
  before_call("mkdirat", path, -1);
  return real_mkdirat(dirfd, path, mode);
}

/* ---------------------------------------------------------------- flushes */

int fsync(int fd) {
  RESOLVE(fsync);
  before_call("fsync", NULL, fd);
  return real_fsync(fd);
}

int fdatasync(int fd) {
  RESOLVE(fdatasync);
  before_call("fdatasync", NULL, fd);
  return real_fdatasync(fd);
}

int syncfs(int fd) {
  RESOLVE(syncfs);
  before_call("syncfs", NULL, fd);
  return real_syncfs(fd);
}

int ftruncate(int fd, off_t length) {
  RESOLVE(ftruncate);
  before_call("ftruncate", NULL, fd);
  return real_ftruncate(fd, length);
}

int ftruncate64(int fd, off_t length) {
  RESOLVE(ftruncate64);
  before_call("ftruncate64", NULL, fd);
  return real_ftruncate64(fd, length);
}
