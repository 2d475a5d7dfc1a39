/* Wall-clock faults for one process, loaded with LD_PRELOAD by the chaos harness.
 *
 * It changes what the process reads from the wall clock (CLOCK_REALTIME,
 * gettimeofday, time) and nothing else: the monotonic clock, sleeps and
 * timers stay true, exactly as when NTP steps or slews a host's clock. The
 * fault is read at run time from the file named by SWARMNODE_CHAOS_CLOCK_FILE,
 * which holds three numbers, "offset rate anchor": the fake time is
 *
 *     real + offset + (real - anchor) * (rate - 1)
 *
 * so "2.5 1 0" is a clock 2.5 s ahead and "0 1.01 T" one that has gained
 * 1% since the real time T. The file is re-read at most every 100 ms.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static int (*real_clock_gettime)(clockid_t, struct timespec *);
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const char *path;
static double offset, rate = 1.0, anchor, next_read;

__attribute__((constructor)) static void init(void) {
    real_clock_gettime = dlsym(RTLD_NEXT, "clock_gettime");
    path = getenv("SWARMNODE_CHAOS_CLOCK_FILE");
}

static double seconds(const struct timespec *ts) { return ts->tv_sec + ts->tv_nsec / 1e9; }

static void refresh(void) {
    struct timespec mono;
    double o, r, a;
    FILE *f;
    if (path == NULL || pthread_mutex_trylock(&lock) != 0) return;
    real_clock_gettime(CLOCK_MONOTONIC, &mono);
    if (seconds(&mono) >= next_read) {
        next_read = seconds(&mono) + 0.1;
        f = fopen(path, "re");
        if (f != NULL) {
            if (fscanf(f, "%lf %lf %lf", &o, &r, &a) == 3) {
                offset = o;
                rate = r;
                anchor = a;
            }
            fclose(f);
        }
    }
    pthread_mutex_unlock(&lock);
}

static void shift(struct timespec *ts) {
    double real = seconds(ts);
    double fake = real + offset + (real - anchor) * (rate - 1.0);
    double whole = (double)(long long)fake;
    if (whole > fake) whole -= 1.0;
    ts->tv_sec = (time_t)whole;
    ts->tv_nsec = (long)((fake - whole) * 1e9);
    if (ts->tv_nsec >= 1000000000L) ts->tv_nsec = 999999999L;
}

int clock_gettime(clockid_t clock, struct timespec *ts) {
    int rc;
    if (real_clock_gettime == NULL) real_clock_gettime = dlsym(RTLD_NEXT, "clock_gettime");
    rc = real_clock_gettime(clock, ts);
    if (rc == 0 && (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE)) {
        refresh();
        shift(ts);
    }
    return rc;
}

int gettimeofday(struct timeval *tv, void *tz) {
    struct timespec ts;
    (void)tz;
    if (tv == NULL) return 0;
    clock_gettime(CLOCK_REALTIME, &ts);
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
    return 0;
}

time_t time(time_t *out) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (out != NULL) *out = ts.tv_sec;
    return ts.tv_sec;
}
