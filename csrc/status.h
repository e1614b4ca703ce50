#ifndef NC_STATUS_H
#define NC_STATUS_H

/* Bump when any exported signature or behaviour changes; nacrith/_native.py checks it. */
#define NC_ABI_VERSION 11

enum nc_status {
    NC_OK = 0,
    NC_ERR_ARG = 1,     /* caller broke a documented precondition */
    NC_ERR_NOMEM = 2,
    NC_ERR_CORRUPT = 3, /* the coded data cannot have come from our encoder */
    NC_ERR_STATE = 4    /* call out of order, e.g. encode after finish */
};

int nc_abi_version(void);

#endif
