/*
 * Private to common/: the run of bytes at the start of a string that an escaper or scrubber
 * leaves as they are, found sixteen bytes at a time (SSE2, part of x86-64), so that long
 * plain text (the next steps of a findings table, XML bodies) is copied in bulk while the
 * byte loops that follow keep the rules.
 */
#ifndef ET_COMMON_PLAINRUN_H
#define ET_COMMON_PLAINRUN_H

#include <stddef.h>
#include <stdint.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/*
 * How many bytes from p (n long) are plain, in whole blocks of 16 (the byte loop does the
 * rest): none below 0x20, none of the nspec bytes of spec (at most 6), none at or above 0x7F
 * unless high_ok (then 0x7F and up are plain too). 0 without SSE2.
 */
static inline size_t et__plain_run(const char *p, size_t n, const char *spec, int nspec,
                                   int high_ok)
{
    size_t i = 0;
#ifdef __SSE2__
    const __m128i sp = _mm_set1_epi8(0x20), del = _mm_set1_epi8(0x7f);
    const __m128i top3 = _mm_set1_epi8((char)0xE0), zero = _mm_setzero_si128();
    __m128i s[6];
    for (int k = 0; k < nspec && k < 6; k++)
        s[k] = _mm_set1_epi8(spec[k]);
    for (; i + 16 <= n; i += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(p + i)), bad;
        if (high_ok) /* only 0x00..0x1F: the top three bits clear */
            bad = _mm_cmpeq_epi8(_mm_and_si128(x, top3), zero);
        else /* signed: 0x80..0xFF are below 0x20 too */
            bad = _mm_or_si128(_mm_cmplt_epi8(x, sp), _mm_cmpeq_epi8(x, del));
        for (int k = 0; k < nspec && k < 6; k++)
            bad = _mm_or_si128(bad, _mm_cmpeq_epi8(x, s[k]));
        if (_mm_movemask_epi8(bad) != 0)
            break;
    }
#else
    (void)p;
    (void)n;
    (void)spec;
    (void)nspec;
    (void)high_ok;
#endif
    return i;
}

#endif
