/* bench_sweep.c - wall time of a grid (default: the README's examples/grids/example.json)
 * run four ways on this machine: one point at a time with every core inside it (--jobs 1, the
 * default), points side by side with one thread each (--jobs 2 --threads 1), and, in MPI builds,
 * under mpirun with 1 and 2 ranks. Prints seconds and ratios; a benchmark, not a test. */
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

/* Seconds taken by argv, or -1 when it failed to run (exit status 1 is a bad point: fine). */
static double timed(char *const *argv)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    double t0 = now();
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return -1;
    int status;
    waitpid(pid, &status, 0);
    double t = now() - t0;
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

    char *jobs1[] = {(char *)exe, "sweep", grid, "--out", out, NULL};
    char *jobs2[] = {(char *)exe, "sweep", grid,        "--out", out,
                     "--jobs",    "2",     "--threads", "1",     NULL};
    double t_threads = timed(jobs1), t_points = timed(jobs2);
    printf("one point at a time, all cores inside (--jobs 1):      %8.2f s\n", t_threads);
    printf("two points at a time, one thread each (--jobs 2 -t 1): %8.2f s  (%.2fx)\n", t_points,
           t_threads / t_points);
    if (mpirun && *mpirun) {
        char *np1[] = {(char *)mpirun, "--oversubscribe", "-np", "1", (char *)exe, "sweep",
                       grid,           "--out",           out,   NULL};
        char *np2[] = {(char *)mpirun, "--oversubscribe", "-np", "2", (char *)exe, "sweep",
                       grid,           "--out",           out,   NULL};
        double r1 = timed(np1), r2 = timed(np2);
        printf("mpirun -np 1 (one rank, all cores inside):             %8.2f s\n", r1);
        printf("mpirun -np 2 (one thread per rank):                    %8.2f s  (%.2fx)\n", r2,
               r1 / r2);
    }
    unlink(out);
    return 0;
}
