/* Container root racing `berth exec` (the CVE-2016-9962 class): watches /proc for new
 * processes until /racer.stop exists (or the given number of seconds) and, for each, tries to read its environment,
 * its executable's host path and to ptrace-attach to it. Prints counts:
 *   seen=N attached=N host_exe=N marker=N exe_write=N
 * host_exe: the process was attached (or its exe link read) while it still ran a binary
 * that is not the container's (Berth's own, pre-execve); marker: the caller's environment
 * (a variable named BERTH_TEST_SECRET) was read from it; exe_write: its executable was
 * opened for writing through /proc/<pid>/exe (CVE-2019-5736: overwriting the host's
 * runtime binary). All three must stay 0. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static unsigned char seen_map[1 << 22];

static int exe_is_host(int pid) {
    char p[64], buf[4096];
    snprintf(p, sizeof p, "/proc/%d/exe", pid);
    ssize_t n = readlink(p, buf, sizeof buf - 1);
    if (n <= 0) return 0;
    buf[n] = 0;
    return strstr(buf, "berth") != NULL && strstr(buf, "/.berth/") == NULL;
}

static int exe_writable(int pid) {
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/exe", pid);
    int fd = open(p, O_WRONLY | O_NONBLOCK);
    if (fd < 0) return 0;
    close(fd);
    return 1;
}

static int environ_has_marker(int pid) {
    char p[64], buf[65536];
    snprintf(p, sizeof p, "/proc/%d/environ", pid);
    int fd = open(p, O_RDONLY);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    for (ssize_t i = 0; i + 17 < n; i++)
        if (memcmp(buf + i, "BERTH_TEST_SECRET", 17) == 0) return 1;
    return 0;
}

int main(int argc, char **argv) {
    int secs = argc > 1 ? atoi(argv[1]) : 10;
    int me = getpid();
    long seen = 0, attached = 0, host_exe = 0, marker = 0, exe_write = 0;
    time_t end = time(NULL) + secs;
    while (time(NULL) < end && access("/racer.stop", F_OK) != 0) {
        DIR *d = opendir("/proc");
        if (!d) return 2;
        struct dirent *e;
        while ((e = readdir(d))) {
            int pid = atoi(e->d_name);
            /* Each process is tried again on every pass (up to 200 times) until an attach
             * succeeds: through the whole window before its execve, and after. */
            if (pid <= 1 || pid == me || pid >= (int)sizeof seen_map) continue;
            unsigned char tries = seen_map[pid];
            if (tries >= 200) continue;
            if (tries == 0) seen++;
            seen_map[pid] = (unsigned char)(tries + 1);
            if (environ_has_marker(pid)) marker++;
            if (exe_is_host(pid)) host_exe++;
            if (exe_writable(pid)) exe_write++;
            if (ptrace(PTRACE_ATTACH, pid, 0, 0) == 0) {
                attached++;
                seen_map[pid] = 200;
                waitpid(pid, NULL, __WALL);
                if (exe_is_host(pid)) host_exe++;
                if (environ_has_marker(pid)) marker++;
                ptrace(PTRACE_DETACH, pid, 0, 0);
                /* The attach's SIGSTOP may leave a group stop behind: undo it, so that the
                 * racer never stops the commands it watches. */
                kill(pid, SIGCONT);
            }
        }
        closedir(d);
    }
    printf("seen=%ld attached=%ld host_exe=%ld marker=%ld exe_write=%ld\n", seen, attached,
           host_exe, marker, exe_write);
    return 0;
}
