/* Last words when native code kills the process: the CLI's crash guard.
 *
 * llama.cpp runs inside the CLI's own process. When it dies from a signal
 * (an instruction the CPU lacks, a bad memory access, an abort), the default
 * action ends the process with no word to the user and leaves a temporary
 * output file behind. The guard's handler instead writes the one line set
 * for that signal, removes the files registered with it, and exits with
 * status 1, doing only what is safe inside a signal handler (write, unlink,
 * _exit). Only the CLI installs it: a library must not take its host's
 * signals. */
#ifndef NC_CRASH_H
#define NC_CRASH_H

/* Most files removed on a crash at once, and the longest path (bytes, with NUL). */
#define NC_CRASH_MAX_FILES 8
#define NC_CRASH_PATH_MAX 4096
#define NC_CRASH_MESSAGE_MAX 1024

/* Handle `sig` (SIGILL, SIGSEGV, SIGBUS, SIGFPE or SIGABRT) by writing `message`
 * (a whole line, newline included) to stderr, removing the registered files and
 * exiting with status 1. Returns NC_OK, or NC_ERR_ARG for another signal or a
 * message too long. */
int nc_crash_guard(int sig, const char *message);

/* Remove `path` (absolute) if the process crashes; returns a slot >= 0 for
 * nc_crash_forget, or -1 when the path is too long or all slots are taken. */
int nc_crash_remove_on_crash(const char *path);

/* The file of `slot` is no longer ours to remove (renamed into place, or deleted). */
void nc_crash_forget(int slot);

#endif
