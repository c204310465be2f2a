/* bench_sweep.c - wall time of a grid (default: the README's examples/grids/example.json)
 * run four ways on this machine: one point at a time with every core inside it (--jobs 1),
 * points side by side with one thread each (--jobs 2 --threads 1, the default on 2 cores), and,
 * in MPI builds, under mpirun with 1 and 2 ranks. Prints seconds and ratios; a benchmark, not a
 * test. */
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Seconds taken by argv, or -1 when it failed to run (exit status 1 is a bad point: fine).
 * *inside receives the sweep's own wall time from its summary line ("wall X s"): the total
 * minus launching and tearing down MPI. */
static double timed(char *const *argv, const char *errfile, double *inside)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, errfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    double t0 = now();
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return -1;
    int status;
    waitpid(pid, &status, 0);
    double t = now() - t0;
    *inside = -1;
    FILE *f = fopen(errfile, "r");
    char line[1024];
    while (f && fgets(line, sizeof line, f)) {
        const char *w = strstr(line, ", wall ");
        if (w && strncmp(line, "roteq sweep: ", 13) == 0)
            *inside = atof(w + 7);
    }
    if (f)
        fclose(f);
    return WIFEXITED(status) && WEXITSTATUS(status) <= 1 ? t : -1;
}

int main(int argc, char **argv)
{
    const char *exe = getenv("ROTEQ_EXE"), *src = getenv("ROTEQ_SOURCE_DIR");
    const char *mpirun = getenv("ROTEQ_MPIRUN");
    if (exe == NULL || src == NULL) {
        fprintf(stderr, "bench_sweep: ROTEQ_EXE and ROTEQ_SOURCE_DIR must be set (meson does)\n");
        return 2;
    }
    char grid[4096], out[4096];
    if (argc > 1)
        snprintf(grid, sizeof grid, "%s", argv[1]);
    else
        snprintf(grid, sizeof grid, "%s/examples/grids/example.json", src);
    const char *tmp = getenv("TMPDIR");
    snprintf(out, sizeof out, "%s/roteq-bench-sweep-%ld.csv", tmp && *tmp ? tmp : "/tmp",
             (long)getpid());
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    printf("grid %s, %ld cores\n", grid, cores);

    /* The machine is shared: each way runs `reps` times, interleaved, and the minimum and the
     * median are printed (the minimum is the least disturbed run). */
    enum { reps = 3, ways = 4 };
    char *cmd[ways][16] = {
        {(char *)exe, "sweep", grid, "--out", out, "--jobs", "1", NULL},
        {(char *)exe, "sweep", grid, "--out", out, "--jobs", "2", "--threads", "1", NULL},
        {(char *)mpirun, "--oversubscribe", "-np", "1", (char *)exe, "sweep", grid, "--out", out,
         NULL},
        {(char *)mpirun, "--oversubscribe", "-np", "2", (char *)exe, "sweep", grid, "--out", out,
         NULL},
    };
    static const char *const label[ways] = {
        "one point at a time, all cores inside (--jobs 1):     ",
        "two points at a time, one thread each (--jobs 2 -t 1):",
        "mpirun -np 1 (one rank, bound to one core):           ",
        "mpirun -np 2 (one thread per rank):                   ",
    };
    int nways = mpirun && *mpirun ? 4 : 2;
    char errfile[4200];
    snprintf(errfile, sizeof errfile, "%s.err", out);
    double t[ways][reps], in[ways][reps];
    for (int r = 0; r < reps; r++)
        for (int w = 0; w < nways; w++)
            t[w][r] = timed(cmd[w], errfile, &in[w][r]);
    for (int w = 0; w < nways; w++) {
        for (int a = 0; a < reps; a++) /* sort the few samples by total time */
            for (int c = a + 1; c < reps; c++)
                if (t[w][c] < t[w][a]) {
                    double x = t[w][a], y = in[w][a];
                    t[w][a] = t[w][c];
                    in[w][a] = in[w][c];
                    t[w][c] = x;
                    in[w][c] = y;
                }
        printf("%s min %6.2f s (sweep itself %6.2f s), median %6.2f s", label[w], t[w][0], in[w][0],
               t[w][reps / 2]);
        if (w % 2 == 1)
            printf("  %.2fx (%.2fx inside)", t[w - 1][0] / t[w][0], in[w - 1][0] / in[w][0]);
        printf("\n");
    }
    printf("(the ratio compares each line with the one above it, by minimum)\n");
    unlink(errfile);
    unlink(out);
    return 0;
}
