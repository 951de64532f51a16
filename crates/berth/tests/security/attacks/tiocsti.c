/* Container root typing into whatever terminal its stdin is (the TIOCSTI class): pushes a
 * command line into the terminal's input queue, one byte at a time. Prints the result on
 * stderr as `tiocsti: ok` or `tiocsti: errno=N`. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

int main(void) {
    const char *cmd = "echo INJECTED-BY-CONTAINER\n";
    for (size_t i = 0; i < strlen(cmd); i++) {
        if (ioctl(0, TIOCSTI, cmd + i) < 0) {
            fprintf(stderr, "tiocsti: errno=%d\n", errno);
            return 1;
        }
    }
    fprintf(stderr, "tiocsti: ok\n");
    return 0;
}
