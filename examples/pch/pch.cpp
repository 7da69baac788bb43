// Anchor for the examples' precompiled header (examples/CMakeLists.txt).
int main() { return 0; }
