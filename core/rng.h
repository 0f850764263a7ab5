/*
 * core: the one pseudo-random generator of the runtime.
 * xoshiro256** (Blackman and Vigna), seeded through splitmix64, so a 64-bit
 * seed gives a well-mixed 256-bit state. Deterministic on every platform:
 * synthetic models and seeded sampling reproduce exactly.
 */
#ifndef TAI_CORE_RNG_H
#define TAI_CORE_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} tai_rng;

/* Advances *x and returns the next splitmix64 output. */
static inline uint64_t tai_splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline void tai_rng_seed(tai_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = tai_splitmix64(&seed);
}

static inline uint64_t tai_rng_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t tai_rng_next(tai_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = tai_rng_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = tai_rng_rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double tai_rng_uniform(tai_rng *r) {
    return (double)(tai_rng_next(r) >> 11) * 0x1.0p-53;
}

#endif
