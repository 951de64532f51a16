/* Container root trying the escape syscalls and files one by one. Each argument names a
 * probe; each prints one line `NAME ok` or `NAME errno=N`. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static void say(const char *name, long rc) {
    if (rc < 0) printf("%s errno=%d\n", name, errno);
    else printf("%s ok\n", name);
    fflush(stdout);
}

static long probe(const char *p) {
    if (!strcmp(p, "kexec_load")) return syscall(SYS_kexec_load, 0, 0, 0, 0);
    if (!strcmp(p, "kexec_file_load")) return syscall(SYS_kexec_file_load, -1, -1, 0, "", 0);
    if (!strcmp(p, "init_module")) return syscall(SYS_init_module, "", 0, "");
    if (!strcmp(p, "finit_module")) return syscall(SYS_finit_module, -1, "", 0);
    if (!strcmp(p, "delete_module")) return syscall(SYS_delete_module, "ext4", 0);
    if (!strcmp(p, "keyctl")) return syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3, 0);
    if (!strcmp(p, "add_key")) return syscall(SYS_add_key, "user", "x", "y", 1, -3);
    if (!strcmp(p, "request_key")) return syscall(SYS_request_key, "user", "x", 0, -3);
    if (!strcmp(p, "open_by_handle_at")) {
        /* the "shocker" escape: a handle for the host's root inode */
        struct { unsigned int bytes; int type; unsigned char f[8]; } h = {8, 1, {2, 0, 0, 0, 0, 0, 0, 0}};
        return syscall(SYS_open_by_handle_at, AT_FDCWD, &h, O_RDONLY);
    }
    if (!strcmp(p, "name_to_handle_at")) {
        struct { unsigned int bytes; int type; unsigned char f[128]; } h = {128, 0, {0}};
        int mnt;
        return syscall(SYS_name_to_handle_at, AT_FDCWD, "/", &h, &mnt, 0);
    }
    if (!strcmp(p, "bpf")) {
        union bpf_attr a;
        memset(&a, 0, sizeof a);
        a.map_type = BPF_MAP_TYPE_ARRAY;
        a.key_size = 4;
        a.value_size = 4;
        a.max_entries = 1;
        return syscall(SYS_bpf, BPF_MAP_CREATE, &a, sizeof a);
    }
    if (!strcmp(p, "perf_event_open")) {
        struct perf_event_attr a;
        memset(&a, 0, sizeof a);
        a.size = sizeof a;
        a.type = PERF_TYPE_SOFTWARE;
        a.config = PERF_COUNT_SW_CPU_CLOCK;
        return syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
    }
    if (!strcmp(p, "userfaultfd")) return syscall(SYS_userfaultfd, O_CLOEXEC);
    if (!strcmp(p, "userfaultfd_user_mode_only")) return syscall(SYS_userfaultfd, O_CLOEXEC | 1);
    if (!strcmp(p, "iopl")) return syscall(SYS_iopl, 3);
    if (!strcmp(p, "ioperm")) return syscall(SYS_ioperm, 0x80, 1, 1);
    if (!strcmp(p, "swapon")) return syscall(SYS_swapon, "/dev/null", 0);
    if (!strcmp(p, "settimeofday")) return syscall(SYS_settimeofday, NULL, NULL);
    if (!strcmp(p, "clock_settime")) {
        struct timespec t = {0, 0};
        return syscall(SYS_clock_settime, CLOCK_REALTIME, &t);
    }
    if (!strcmp(p, "acct")) return syscall(SYS_acct, NULL);
    /* device allowlist: a node of /dev/mem and of the first disk can be made, not opened */
    if (!strcmp(p, "mknod_mem")) {
        unlink("/probe-mem");
        return mknod("/probe-mem", S_IFCHR | 0600, makedev(1, 1));
    }
    if (!strcmp(p, "open_mem")) return open("/probe-mem", O_RDONLY);
    if (!strcmp(p, "mknod_disk")) {
        unlink("/probe-sda");
        return mknod("/probe-sda", S_IFBLK | 0600, makedev(8, 0));
    }
    if (!strcmp(p, "open_disk")) return open("/probe-sda", O_RDONLY);
    if (!strcmp(p, "open_null")) return open("/dev/null", O_RDWR);
    /* procfs and sysfs */
    if (!strcmp(p, "write_core_pattern")) return open("/proc/sys/kernel/core_pattern", O_WRONLY);
    if (!strcmp(p, "write_sysrq")) return open("/proc/sysrq-trigger", O_WRONLY);
    if (!strcmp(p, "read_kcore")) return open("/proc/kcore", O_RDONLY);
    if (!strcmp(p, "write_sys_kernel")) return open("/sys/kernel/uevent_helper", O_WRONLY);
    if (!strcmp(p, "write_release_agent")) return open("/sys/fs/cgroup/memory/release_agent", O_WRONLY);
    /* in a new mount namespace of container root: masks and read-only binds can be undone
     * (they are the container's own mounts); what is behind them stays the host's */
    if (!strcmp(p, "unshare_mnt")) return unshare(CLONE_NEWNS);
    if (!strcmp(p, "umount_proc_sys")) return umount2("/proc/sys", MNT_DETACH);
    if (!strcmp(p, "mount_cgroup_v1")) {
        mkdir("/probe-cg", 0700);
        return mount("cgroup", "/probe-cg", "cgroup", 0, "rdma");
    }
    if (!strcmp(p, "mount_cgroup_v1_memory")) {
        mkdir("/probe-cg", 0700);
        return mount("cgroup", "/probe-cg", "cgroup", 0, "memory");
    }
    if (!strcmp(p, "mount_sysfs_rw")) {
        mkdir("/probe-sys", 0700);
        return mount("sysfs", "/probe-sys", "sysfs", 0, NULL);
    }
    if (!strcmp(p, "write_fresh_sysfs_uevent_helper")) return open("/probe-sys/kernel/uevent_helper", O_WRONLY);
    if (!strcmp(p, "write_cg_release_agent")) {
        /* CVE-2022-0492: a cgroup v1 hierarchy mounted by container root, its
         * release_agent run by the kernel as host root */
        int fd = open("/probe-cg/release_agent", O_WRONLY);
        if (fd < 0) return -1;
        long r = write(fd, "/probe-agent", 12);
        close(fd);
        return r;
    }
    if (!strcmp(p, "write_cg_notify_on_release")) return open("/probe-cg/notify_on_release", O_WRONLY);
    if (!strcmp(p, "write_cg_memory_limit")) return open("/probe-cg/memory.limit_in_bytes", O_WRONLY);
    if (!strcmp(p, "write_fresh_sysfs_thp")) return open("/probe-sys/kernel/mm/transparent_hugepage/enabled", O_WRONLY);
    if (!strcmp(p, "write_fresh_sysfs_uevent")) return open("/probe-sys/kernel/uevent_seqnum", O_WRONLY);
    if (!strcmp(p, "mount_proc_fresh")) {
        mkdir("/probe-proc", 0700);
        return mount("proc", "/probe-proc", "proc", 0, NULL);
    }
    if (!strcmp(p, "write_fresh_proc_core_pattern")) return open("/probe-proc/sys/kernel/core_pattern", O_WRONLY);
    if (!strcmp(p, "mount_tmpfs_mnt")) {
        mkdir("/probe-mnt", 0700);
        return mount("probe-tmpfs", "/probe-mnt", "tmpfs", 0, "size=1m");
    }
    errno = EINVAL;
    return -1;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) say(argv[i], probe(argv[i]));
    return 0;
}
