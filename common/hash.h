/* common/hash.h — MurmurHash3 (through libmurmurhash) and the rendezvous scores built on it. */
#ifndef STF_HASH_H
#define STF_HASH_H

#include <stddef.h>
#include <stdint.h>

/* MurmurHash3_x64_128 of data with seed 0; returns the first 64-bit half (native order). */
uint64_t hash_murmur64(const void *data, size_t len);

/* Rendezvous score of key with member id: MurmurHash3_x64_128(key ‖ decimal id), first half.
 * Used for cluster choice (key = "bucket/object", id = cluster id) and for the read order
 * of storages (key = the object's internal id, id = storage id). Higher scores go first. */
uint64_t hash_rendezvous(const char *key, size_t key_len, int64_t id);

#endif
