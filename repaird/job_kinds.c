/* repaird/job_kinds.c — the table of job kinds repaird runs. A new kind is one file with its
 * struct job_kind plus one line here. */
#include "job.h"

#include <string.h>

extern const struct job_kind job_kind_delete_files;
extern const struct job_kind job_kind_repair_object;
extern const struct job_kind job_kind_delete_bucket;
extern const struct job_kind job_kind_rebalance;
extern const struct job_kind job_kind_recover_storage;

static const struct job_kind *const job_kinds[] = {
    &job_kind_delete_files,
    &job_kind_repair_object,
    &job_kind_delete_bucket,
    &job_kind_recover_storage,
    &job_kind_rebalance,
};

const struct job_kind *job_kind_find(const char *name)
{
    for (size_t i = 0; i < sizeof(job_kinds) / sizeof(job_kinds[0]); i++) {
        if (strcmp(job_kinds[i]->name, name) == 0)
            return job_kinds[i];
    }
    return NULL;
}
