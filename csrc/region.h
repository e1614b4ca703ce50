/* Memory that holds what a model has learned, listed so that it can be saved
 * and loaded as bytes (a dictionary's pre-trained ensemble: nc_ens_regions). */
#ifndef NC_REGION_H
#define NC_REGION_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    void *ptr;
    size_t size;
} nc_region;

/* Append a region if there is room; the count grows either way, so a caller
 * can ask with max = 0 how many there are. */
static inline uint32_t nc_region_add(nc_region *out, uint32_t max, uint32_t n, void *ptr, size_t size) {
    if (n < max) {
        out[n].ptr = ptr;
        out[n].size = size;
    }
    return n + 1;
}

#endif
