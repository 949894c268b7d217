/* The floor for a pass-through shim: one static binary that only execs the real bash. */
#include <unistd.h>
int main(int argc, char **argv) {
    (void)argc;
    execv("/usr/bin/bash", argv);
    return 127;
}
