/* clusterctl/migrations.h — the migrations embedded at build time (migrations_data.c is
 * generated from the migrations/ folder by embed_migrations.py), in increasing version order. */
#ifndef STF_CLUSTERCTL_MIGRATIONS_H
#define STF_CLUSTERCTL_MIGRATIONS_H

#include <stddef.h>

struct migration {
    int version;      /* NNNN */
    const char *name; /* "NNNN_verb_noun", the file name without .sql */
    const char *sql;  /* the whole script, applied in one transaction */
};

extern const struct migration migrations[];
extern const size_t migrations_count;

#endif
