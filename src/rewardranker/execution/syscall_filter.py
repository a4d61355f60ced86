"""The sandbox's seccomp filters, built with libseccomp's own Python bindings (Debian's python3-seccomp).

Run as `/usr/bin/python3 -I syscall_filter.py sandbox|program [SUPERVISOR_PID]`: writes the filter as raw BPF
on stdout (what `bwrap --seccomp FD` and PR_SET_SECCOMP take). The bindings are built for Debian's python3, not
for the project's virtualenv, so the host runs this file once per process and keeps the bytes.

`sandbox` (given to every bwrap: programs, the supervisor and the compile servers) fails with EPERM:
ptrace, process_vm_readv/writev, process_madvise, pidfd_getfd, kcmp (reading or writing another process),
unshare, setns and clone with any CLONE_NEW* flag (new namespaces), mount and the new mount API, pivot_root,
chroot, keyctl/add_key/request_key, bpf, perf_event_open, userfaultfd, io_uring_*, fanotify_init,
open_by_handle_at/name_to_handle_at, module and kexec loading, reboot, swapon/off, acct, quotactl, syslog,
clock and time setting, iopl/ioperm, vhangup, uselib, lookup_dcookie; clone3 fails with ENOSYS (its flags are
in memory a filter cannot read; glibc then falls back to clone, whose flags are checked). Other architectures'
system calls (i386, x32) kill the process.
`program` (stacked on top for each program, by the supervisor, just before it runs it) also denies signals
(kill, tkill, tgkill, rt_sigqueueinfo, rt_tgsigqueueinfo), pidfd_open, prlimit and scheduling changes aimed at
pid 1 (bwrap) or the supervisor, kill(-1) and pidfd_send_signal, so a program can neither stop, slow nor kill
the process that reports its verdict.
"""

import errno
import sys

import seccomp

DENY = (
    "ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "pidfd_getfd", "kcmp",
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen",
    "fsconfig", "fsmount", "fspick", "mount_setattr", "keyctl", "add_key", "request_key", "bpf",
    "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register", "fanotify_init",
    "open_by_handle_at", "name_to_handle_at", "init_module", "finit_module", "delete_module", "kexec_load",
    "kexec_file_load", "reboot", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "syslog",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "iopl", "ioperm", "vhangup", "uselib",
    "lookup_dcookie",
)
CLONE_NEW = {"CLONE_NEWNS": 0x00020000, "CLONE_NEWCGROUP": 0x02000000, "CLONE_NEWUTS": 0x04000000,
             "CLONE_NEWIPC": 0x08000000, "CLONE_NEWUSER": 0x10000000, "CLONE_NEWPID": 0x20000000,
             "CLONE_NEWNET": 0x40000000, "CLONE_NEWTIME": 0x00000080}
PROTECTED_ARG0 = ("kill", "tkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "tgkill", "pidfd_open", "prlimit64",
                  "sched_setaffinity", "sched_setscheduler", "sched_setparam", "sched_setattr")


def _known(name: str) -> bool:
    try:
        seccomp.resolve_syscall(seccomp.Arch.NATIVE, name)
        return True
    except (ValueError, RuntimeError):
        return False


def sandbox_filter() -> seccomp.SyscallFilter:
    f = seccomp.SyscallFilter(seccomp.ALLOW)
    for name in DENY:
        if _known(name):
            f.add_rule(seccomp.ERRNO(errno.EPERM), name)
    for flag in CLONE_NEW.values():
        f.add_rule(seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    f.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    return f


def program_filter(supervisor_pid: int) -> seccomp.SyscallFilter:
    f = seccomp.SyscallFilter(seccomp.ALLOW)
    deny = seccomp.ERRNO(errno.EPERM)
    for pid in (1, supervisor_pid):
        for name in PROTECTED_ARG0:
            f.add_rule(deny, name, _int_arg(0, pid))
        f.add_rule(deny, "setpriority", _int_arg(1, pid))
        f.add_rule(deny, "kill", _int_arg(0, -pid))  # kill(-pgid): the supervisor leads its process group
    f.add_rule(deny, "kill", _int_arg(0, -1))  # every process the program may signal, the supervisor included
    f.add_rule(deny, "pidfd_send_signal")  # its target (an open /proc/PID directory works too) is not an argument
    return f


def _int_arg(index: int, value: int) -> seccomp.Arg:
    """Compare a 32-bit (pid_t) argument: only the low half of the 64-bit register is defined."""
    return seccomp.Arg(index, seccomp.MASKED_EQ, 0xFFFFFFFF, value & 0xFFFFFFFF)


def main(argv: list[str]) -> None:
    f = program_filter(int(argv[2])) if argv[1] == "program" else sandbox_filter()
    f.export_bpf(sys.stdout.buffer)
    sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv)
