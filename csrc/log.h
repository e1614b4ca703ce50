/* A sink for llama.cpp's log messages, in C.
 *
 * llama.cpp logs every model load to stderr, which belongs to our user, so we
 * install a callback that drops the messages. It must not be a Python
 * function: a Ctrl-C that arrives while Python runs a ctypes callback raises
 * KeyboardInterrupt inside the callback, where ctypes prints and discards it,
 * so the interrupt is lost while the model loads. A C callback runs no Python
 * code; the signal stays pending and is raised when the load returns. */
#ifndef NC_LOG_H
#define NC_LOG_H

/* Signature of llama.cpp's ggml_log_callback; the level is an enum passed as int. */
void nc_log_discard(int level, const char *text, void *user_data);

#endif
