/* mpi.c - dealing grid points to MPI ranks (built with -Dmpi=enabled; otherwise stubs).
 *
 * Rank 0 is the dealer and the only writer: it hands out point indices one at a time to any
 * rank that asks (dynamic dealing, because points differ in cost by orders of magnitude),
 * receives each finished record as plain bytes, and passes it to the sink. Rank 0 also computes
 * points on a second thread, so -np 2 on two cores keeps both busy; only rank 0's main thread
 * ever calls MPI (MPI_THREAD_FUNNELED), and it waits with MPI_Test and short sleeps rather
 * than a blocking receive, which in Open MPI spins and would steal a core from the simulation.
 *
 * Records are shipped as raw bytes: all ranks must run the same roteq binary (as mpirun and
 * srun normally do). Numbers do not depend on which rank computed a point. */
#include "sweep_internal.h"
#include "roteq_util.h"

#include <stdlib.h>
#include <string.h>

/* A process started by a launcher: Open MPI's mpirun, PMIx (srun --mpi=pmix, prterun), PMI-1/2
 * (srun --mpi=pmi2, MPICH's hydra). Plain runs of an MPI build never touch MPI at all. */
static long launcher_size(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE",
                                       "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        long n;
        if (v && roteq_parse_long(v, &n) == 0)
            return n;
    }
    if (getenv("PMIX_RANK") || getenv("PMI_RANK"))
        return 2; /* size unknown, but a launcher is there */
    return 0;
}

#ifdef ROTEQ_HAVE_MPI
#include <mpi.h>
#include <pthread.h>
#include <time.h>

static int mpi_started;

int roteq_sweep_mpi_init(int *argc, char ***argv, int *rank, int *size)
{
    *rank = 0;
    *size = 1;
    if (launcher_size() == 0 && getenv("ROTEQ_MPI") == NULL)
        return ROTEQ_OK;
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return roteq_error_set(ROTEQ_ERUNTIME, "MPI_Init_thread failed");
    mpi_started = 1;
    if (provided < MPI_THREAD_FUNNELED)
        return roteq_error_set(ROTEQ_ERUNTIME,
                               "the MPI library does not allow threads (MPI_THREAD_FUNNELED)");
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
    MPI_Comm_size(MPI_COMM_WORLD, size);
    return ROTEQ_OK;
}

void roteq_sweep_mpi_finalize(void)
{
    if (mpi_started)
        MPI_Finalize();
    mpi_started = 0;
}

int roteq_sweep_mpi_all(int ok)
{
    if (!mpi_started)
        return ok;
    int all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    return all;
}

enum { TAG_READY = 1, TAG_RESULT = 2, TAG_WORK = 3 };

typedef struct {
    const roteq_sweep_grid *g;
    const roteq_sweep_options *o;
    const size_t *order;
    size_t n, next;
    pthread_mutex_t lock; /* next, stop, status and sink calls */
    int stop, status;
} dealer;

/* Next index to run, or -1 when all are dealt (or the sink asked to stop). */
static long long deal(dealer *d)
{
    pthread_mutex_lock(&d->lock);
    long long idx = d->stop || d->next == d->n ? -1 : (long long)d->order[d->next++];
    pthread_mutex_unlock(&d->lock);
    return idx;
}

static void deliver(dealer *d, const roteq_sweep_record *rec)
{
    pthread_mutex_lock(&d->lock);
    if (!d->stop && d->o->sink) {
        roteq_sweep_point pt;
        int st = d->o->sink(d->o->sink_ctx, roteq_sweep_grid_point(d->g, rec->index, &pt), rec);
        if (st) {
            d->stop = 1;
            d->status = st;
        }
    }
    pthread_mutex_unlock(&d->lock);
}

static unsigned rank_threads(const roteq_sweep_options *o)
{
    /* One rank per core is how mpirun and srun are normally used: one simulator thread per
     * rank unless --threads says otherwise (hybrid runs: one rank per node, --threads 0). */
    return o->threads > 0 ? o->threads : 1;
}

static void *root_compute(void *arg)
{
    dealer *d = arg;
    roteq_sweep_record rec;
    long long idx;
    while ((idx = deal(d)) >= 0) {
        roteq_sweep_eval(d->g, d->o, (size_t)idx, rank_threads(d->o), &rec);
        deliver(d, &rec);
    }
    return NULL;
}

static int run_worker(const roteq_sweep_grid *g, const roteq_sweep_options *o)
{
    roteq_sweep_record rec;
    MPI_Send(NULL, 0, MPI_BYTE, 0, TAG_READY, MPI_COMM_WORLD);
    for (;;) {
        long long idx;
        MPI_Recv(&idx, 1, MPI_LONG_LONG, 0, TAG_WORK, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (idx < 0 || (size_t)idx >= g->npoints)
            break;
        roteq_sweep_eval(g, o, (size_t)idx, rank_threads(o), &rec);
        MPI_Send(&rec, (int)sizeof rec, MPI_BYTE, 0, TAG_RESULT, MPI_COMM_WORLD);
    }
    return ROTEQ_OK;
}

static int run_root(const roteq_sweep_grid *g, const unsigned char *skip,
                    const roteq_sweep_options *o, int size)
{
    dealer d = {.g = g, .o = o};
    size_t *order = roteq_sweep_deal_order(g, skip, &d.n);
    if (order == NULL)
        MPI_Abort(MPI_COMM_WORLD, 1); /* the workers are waiting for work that never comes */
    d.order = order;
    pthread_mutex_init(&d.lock, NULL);
    pthread_t tid;
    int local = pthread_create(&tid, NULL, root_compute, &d) == 0;

    roteq_sweep_record rec;
    int active = size - 1;
    long idle_ns = 50000;
    MPI_Request req;
    MPI_Irecv(&rec, (int)sizeof rec, MPI_BYTE, MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &req);
    while (active > 0) {
        int flag = 0;
        MPI_Status st;
        MPI_Test(&req, &flag, &st);
        if (!flag) {
            /* Idle without spinning: back off from 0.05 ms to 2 ms while nothing arrives, so
             * rank 0's own compute thread keeps its core (with a fixed 0.2 ms poll, rank 0's points
             * ran up to 8% slower than rank 1's on a loaded machine), yet a request waits at most 2
             * ms. */
            struct timespec ts = {0, idle_ns};
            nanosleep(&ts, NULL);
            idle_ns = idle_ns < 2000000 ? 2 * idle_ns : 2000000;
            continue;
        }
        idle_ns = 50000;
        if (st.MPI_TAG == TAG_RESULT && rec.index < g->npoints)
            deliver(&d, &rec);
        long long idx = deal(&d);
        MPI_Send(&idx, 1, MPI_LONG_LONG, st.MPI_SOURCE, TAG_WORK, MPI_COMM_WORLD);
        if (idx < 0)
            active--;
        if (active > 0)
            MPI_Irecv(&rec, (int)sizeof rec, MPI_BYTE, MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD,
                      &req);
    }
    if (local)
        pthread_join(tid, NULL);
    else
        root_compute(&d); /* no thread: rank 0 finishes what is left itself */
    pthread_mutex_destroy(&d.lock);
    free(order);
    return d.status;
}

int roteq_sweep_run_mpi(const roteq_sweep_grid *g, const unsigned char *skip,
                        const roteq_sweep_options *o)
{
    int rank = 0, size = 1;
    if (mpi_started) {
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        MPI_Comm_size(MPI_COMM_WORLD, &size);
    }
    if (size <= 1)
        return roteq_sweep_run(g, skip, o);
    return rank == 0 ? run_root(g, skip, o, size) : run_worker(g, o);
}

#else /* no MPI in this build */

int roteq_sweep_mpi_init(int *argc, char ***argv, int *rank, int *size)
{
    (void)argc, (void)argv;
    *rank = 0;
    *size = 1;
    /* Several copies of a non-MPI build would each run the whole grid and write the same
     * file: refuse rather than race. */
    if (launcher_size() > 1)
        return roteq_error_set(ROTEQ_EUNSUPPORTED,
                               "started by mpirun/srun, but this roteq was built without MPI "
                               "(meson setup -Dmpi=enabled)");
    return ROTEQ_OK;
}

void roteq_sweep_mpi_finalize(void) {}

int roteq_sweep_mpi_all(int ok)
{
    return ok;
}

int roteq_sweep_run_mpi(const roteq_sweep_grid *g, const unsigned char *skip,
                        const roteq_sweep_options *o)
{
    return roteq_sweep_run(g, skip, o);
}

#endif
