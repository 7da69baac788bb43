// Anchor for the test suite's precompiled header (tests/CMakeLists.txt).
int main() { return 0; }
