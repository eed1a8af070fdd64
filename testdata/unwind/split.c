// split.c becomes libsplit.so, laid out as BOLT leaves librustc_driver and
// libLLVM: five PT_LOADs, with code in a second executable segment at the
// end whose offset-to-address bias differs from the first's (build.sh
// places far_text at its own address).
__attribute__((noinline, section("far_text"))) int far_leaf(int x) { return x * 3 + 1; }

__attribute__((noinline)) int near_caller(int x) { return far_leaf(x) + 2; }
