/* peak_rss: run a command as the child of this small process, then write
 * "<ru_maxrss KiB> <raw wait status>" to OUTFILE and exit as the child did.
 *
 *   peak_rss OUTFILE PROGRAM [ARG...]
 *
 * Why a separate program: Linux counts in a process's ru_maxrss the memory
 * of the image it replaced at exec, so a child spawned straight from the
 * test binary (one process running every integration test at once) would
 * report the test binary's peak as its own. A child forked from this
 * program starts from this program's few hundred KiB instead. */
#include <errno.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: peak_rss OUTFILE PROGRAM [ARG...]\n");
        return 127;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("peak_rss: fork");
        return 127;
    }
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        perror(argv[2]);
        _exit(127);
    }
    int status;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR) {
            perror("peak_rss: wait4");
            return 127;
        }
    }
    FILE *f = fopen(argv[1], "w");
    if (!f || fprintf(f, "%ld %d\n", ru.ru_maxrss, status) < 0 || fclose(f) != 0) {
        perror(argv[1]);
        return 127;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
