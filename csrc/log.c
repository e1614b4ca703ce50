#include "log.h"

void nc_log_discard(int level, const char *text, void *user_data) {
    (void)level;
    (void)text;
    (void)user_data;
}
