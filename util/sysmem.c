/* sysmem.c - how much memory a run may take, so that commands refuse a job that cannot fit
 * before allocating it (instead of swapping the machine to a halt or zero-filling gigabytes
 * before an "out of memory"). MemAvailable is the kernel's own estimate of what can be
 * allocated without swapping; a run is allowed 90% of it, since the estimate counts page cache
 * that other processes may be refilling and a run sized to all of it was killed by the OOM killer
 * (simulate --neurons 50000000 --dim 16: 24.4 GB against 24.9 GB available). An address-space
 * limit (ulimit -v) is exact and lowers it. */
#include "roteq_util.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

uint64_t roteq_mem_available(const char **what)
{
    uint64_t avail = 0;
    const char *src = "90% of MemAvailable";
    FILE *f = fopen("/proc/meminfo", "r");
    if (f != NULL) {
        char line[256];
        unsigned long long kb;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
                avail = (uint64_t)kb * 1024u / 10u * 9u;
                break;
            }
        fclose(f);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (avail == 0 || (uint64_t)rl.rlim_cur < avail)) {
        avail = (uint64_t)rl.rlim_cur;
        src = "RLIMIT_AS";
    }
    if (what)
        *what = avail ? src : "unknown";
    return avail;
}

void roteq_format_bytes(double bytes, char *buf, size_t n)
{
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
    int u = 0;
    while (bytes >= 1000.0 && u < 6) {
        bytes /= 1000.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, n, "%.0f B", bytes);
    else
        snprintf(buf, n, "%.*f %s", bytes < 10 ? 2 : bytes < 100 ? 1 : 0, bytes, units[u]);
}
