/* leak_check.h — makes a memory leak fail the unit test that caused it.
 *
 * Under the sanitizer build LeakSanitizer only reports at process exit, after
 * Criterion has already counted the test as passed, so a leak would show in
 * the log and still pass. Each suite installs unit_leak_check as its .fini:
 * it runs the leak check in the test's own process and, if anything leaked,
 * ends that process with an error, which Criterion reports as a crash in the
 * test's teardown and the executable exits non-zero. Without ASan it does
 * nothing. */
#ifndef SLUICE_UNIT_LEAK_CHECK_H
#define SLUICE_UNIT_LEAK_CHECK_H

#if defined(__SANITIZE_ADDRESS__)
#define UNIT_HAS_LEAK_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNIT_HAS_LEAK_SANITIZER 1
#endif
#endif

#ifdef UNIT_HAS_LEAK_SANITIZER
#include <sanitizer/lsan_interface.h>
#include <stdio.h>
#include <unistd.h>

static inline void unit_leak_check(void)
{
    if (__lsan_do_recoverable_leak_check() != 0) {
        fputs("unit_leak_check: the test above leaked memory (LeakSanitizer report above)\n", stderr);
        _exit(1);
    }
}
#else
static inline void unit_leak_check(void) {}
#endif

#endif
