/* syscall_filter: runs a program under seccomp filters like the ones systemd
 * installs for these settings of a unit, each its own filter, stacked as
 * systemd stacks them (the strictest answer wins):
 *
 *   SystemCallFilter=         an allow-list, read from a file (one system call
 *   SystemCallErrorNumber=EPERM   name a line); any other call fails with
 *                             EPERM. Names this libseccomp does not know
 *                             are skipped, as systemd skips them.
 *   SystemCallArchitectures=native  calls of another ABI are refused
 *                             (libseccomp's default for a filter).
 *   RestrictAddressFamilies=AF_UNIX  socket() of another family fails with
 *                             EAFNOSUPPORT.
 *   RestrictNamespaces=yes    unshare() and clone() with a namespace flag,
 *                             and setns(), fail with EPERM; clone3(), whose
 *                             flags a filter cannot read, with ENOSYS, so
 *                             that libc falls back to clone().
 *   MemoryDenyWriteExecute=yes  mmap() of memory both writable and
 *                             executable, mprotect()/pkey_mprotect() adding
 *                             execute, shmat() with SHM_EXEC fail with EPERM.
 *
 * Usage: syscall_filter ALLOW-LIST-FILE PROGRAM [ARGUMENT...]
 * Loading a filter needs no_new_privs (setpriv --no-new-privs) or
 * CAP_SYS_ADMIN. The tests run the daemon with it (test_watch_sandbox.py).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char* what, int error) {
  fprintf(stderr, "syscall_filter: %s: %s\n", what, strerror(error));
  exit(125);
}

static void check(int result, const char* what) {
  if (result < 0) die(what, -result);
}

static scmp_filter_ctx new_filter(uint32_t default_action) {
  scmp_filter_ctx filter = seccomp_init(default_action);
  if (!filter) die("seccomp_init", ENOMEM);
  return filter;
}

static void load(scmp_filter_ctx filter, const char* what) {
  check(seccomp_load(filter), what);
  seccomp_release(filter);
}

static void allow_list(const char* path) {
  FILE* file = fopen(path, "r");
  if (!file) die(path, errno);
  scmp_filter_ctx filter = new_filter(SCMP_ACT_ERRNO(EPERM));
  char name[128];
  while (fscanf(file, "%127s", name) == 1) {
    int number = seccomp_syscall_resolve_name(name);
    if (number == __NR_SCMP_ERROR) continue;
    check(seccomp_rule_add(filter, SCMP_ACT_ALLOW, number, 0), name);
  }
  fclose(file);
  load(filter, "SystemCallFilter");
}

static void address_families(void) {
  scmp_filter_ctx filter = new_filter(SCMP_ACT_ALLOW);
  check(seccomp_rule_add(filter, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1,
                         SCMP_A0(SCMP_CMP_NE, AF_UNIX)),
        "socket");
  load(filter, "RestrictAddressFamilies");
}

static void namespaces(void) {
  static const scmp_datum_t flags[] = {CLONE_NEWNS,   CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
                                       CLONE_NEWUSER, CLONE_NEWPID,    CLONE_NEWNET, CLONE_NEWTIME};
  scmp_filter_ctx filter = new_filter(SCMP_ACT_ALLOW);
  for (size_t i = 0; i < sizeof flags / sizeof flags[0]; ++i) {
    check(seccomp_rule_add(filter, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(unshare), 1,
                           SCMP_A0(SCMP_CMP_MASKED_EQ, flags[i], flags[i])),
          "unshare");
    check(seccomp_rule_add(filter, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                           SCMP_A0(SCMP_CMP_MASKED_EQ, flags[i], flags[i])),
          "clone");
  }
  check(seccomp_rule_add(filter, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(setns), 0), "setns");
  check(seccomp_rule_add(filter, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0), "clone3");
  load(filter, "RestrictNamespaces");
}

static void memory_deny_write_execute(void) {
  scmp_filter_ctx filter = new_filter(SCMP_ACT_ALLOW);
  const scmp_datum_t wx = PROT_WRITE | PROT_EXEC;
  check(seccomp_rule_add(filter, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(mmap), 1,
                         SCMP_A2(SCMP_CMP_MASKED_EQ, wx, wx)),
        "mmap");
  check(seccomp_rule_add(filter, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(mprotect), 1,
                         SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC)),
        "mprotect");
  check(seccomp_rule_add(filter, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(pkey_mprotect), 1,
                         SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC)),
        "pkey_mprotect");
  check(seccomp_rule_add(filter, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(shmat), 1,
                         SCMP_A2(SCMP_CMP_MASKED_EQ, SHM_EXEC, SHM_EXEC)),
        "shmat");
  load(filter, "MemoryDenyWriteExecute");
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: syscall_filter ALLOW-LIST-FILE PROGRAM [ARGUMENT...]\n");
    return 125;
  }
  /* The allow-list last: it may not allow seccomp() itself. */
  namespaces();
  address_families();
  memory_deny_write_execute();
  allow_list(argv[1]);
  execv(argv[2], argv + 2);
  die(argv[2], errno);
}
