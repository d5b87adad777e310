/* Says which machine the compiler built it for (the predefined macros of the cross compiler). */
#include <stdio.h>

int main(void)
{
#if defined(__x86_64__)
    puts("hello from linux/amd64");
#elif defined(__aarch64__)
    puts("hello from linux/arm64");
#elif defined(__arm__)
    printf("hello from linux/arm/v%d\n", __ARM_ARCH);
#else
    puts("hello from an unknown machine");
#endif
    return 0;
}
