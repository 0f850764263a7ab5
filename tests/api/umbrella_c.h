/* tests/api/umbrella_c.h: the C11 translation unit's check (umbrella_c.c). */
#ifndef TAI_TESTS_API_UMBRELLA_C_H
#define TAI_TESTS_API_UMBRELLA_C_H
#ifdef __cplusplus
extern "C" {
#endif
/* 4 when every header's names were usable from C11 (see umbrella_c.c). */
int tai_umbrella_c_check(void);
#ifdef __cplusplus
}
#endif
#endif
