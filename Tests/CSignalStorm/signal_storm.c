// The EINTR storm of fault-child: Swift's Glibc module has neither gettid nor tgkill (both
// _GNU_SOURCE), and a process-directed kill reaches the main thread almost always, so the saves
// running on other threads would never see a signal.
#define _GNU_SOURCE
#include "signal_storm.h"
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/syscall.h>
#endif

int signal_storm_send(int signal_number) {
#if defined(__linux__)
    pid_t process = getpid();
    pid_t self = (pid_t)syscall(SYS_gettid);
    DIR *tasks = opendir("/proc/self/task");
    if (tasks == NULL) return 0;
    int sent = 0;
    struct dirent *entry;
    while ((entry = readdir(tasks)) != NULL) {
        pid_t task = (pid_t)atoi(entry->d_name);
        if (task <= 0 || task == self) continue;
        if (syscall(SYS_tgkill, process, task, signal_number) == 0) sent++;
    }
    closedir(tasks);
    return sent;
#else
    return kill(getpid(), signal_number) == 0;
#endif
}

static void ignore(int signal_number) { (void)signal_number; }

void signal_storm_install_interrupting_handler(int signal_number) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = ignore;
    action.sa_flags = 0;
    sigemptyset(&action.sa_mask);
    sigaction(signal_number, &action, NULL);
}
