/* Needs POSIX sigaction and sigaltstack under -std=c11. */
#define _XOPEN_SOURCE 700

#include "crash.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "status.h"

/* One message per signal number; signals above this are not guarded. */
#define NC_CRASH_MAX_SIGNAL 32
/* The handler's own stack, so that a stack overflow can still be reported. */
#define NC_CRASH_STACK_SIZE (64 * 1024)

static char messages[NC_CRASH_MAX_SIGNAL][NC_CRASH_MESSAGE_MAX];
static size_t message_lengths[NC_CRASH_MAX_SIGNAL];
static char paths[NC_CRASH_MAX_FILES][NC_CRASH_PATH_MAX];
/* A slot's path is written before its flag is set and the flag cleared before
 * it is reused, so the handler never reads a half-written path. */
static volatile sig_atomic_t in_use[NC_CRASH_MAX_FILES];
static char handler_stack[NC_CRASH_STACK_SIZE];
static int stack_installed;

static void on_crash(int sig) {
    if (sig > 0 && sig < NC_CRASH_MAX_SIGNAL && message_lengths[sig] > 0) {
        const char *text = messages[sig];
        size_t left = message_lengths[sig];
        while (left > 0) {
            ssize_t n = write(STDERR_FILENO, text, left);
            if (n <= 0) {
                break;
            }
            text += n;
            left -= (size_t)n;
        }
    }
    for (int i = 0; i < NC_CRASH_MAX_FILES; i++) {
        if (in_use[i]) {
            unlink(paths[i]);
        }
    }
    _exit(1);
}

static int guarded(int sig) {
    return sig == SIGILL || sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGABRT;
}

int nc_crash_guard(int sig, const char *message) {
    if (!guarded(sig) || sig >= NC_CRASH_MAX_SIGNAL || message == NULL) {
        return NC_ERR_ARG;
    }
    size_t length = strlen(message);
    if (length == 0 || length >= NC_CRASH_MESSAGE_MAX) {
        return NC_ERR_ARG;
    }
    if (!stack_installed) {
        stack_t stack;
        memset(&stack, 0, sizeof stack);
        stack.ss_sp = handler_stack;
        stack.ss_size = sizeof handler_stack;
        if (sigaltstack(&stack, NULL) == 0) {
            stack_installed = 1;
        }
    }
    memcpy(messages[sig], message, length + 1);
    message_lengths[sig] = length;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_crash;
    sigfillset(&action.sa_mask);
    /* A second fault inside the handler takes the default action, never a loop. */
    action.sa_flags = SA_ONSTACK | SA_RESETHAND;
    return sigaction(sig, &action, NULL) == 0 ? NC_OK : NC_ERR_ARG;
}

int nc_crash_remove_on_crash(const char *path) {
    size_t length = path == NULL ? NC_CRASH_PATH_MAX : strlen(path);
    if (length >= NC_CRASH_PATH_MAX) {
        return -1;
    }
    for (int i = 0; i < NC_CRASH_MAX_FILES; i++) {
        if (!in_use[i]) {
            memcpy(paths[i], path, length + 1);
            in_use[i] = 1;
            return i;
        }
    }
    return -1;
}

void nc_crash_forget(int slot) {
    if (slot >= 0 && slot < NC_CRASH_MAX_FILES) {
        in_use[slot] = 0;
    }
}
