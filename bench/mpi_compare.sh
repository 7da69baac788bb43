#!/usr/bin/env bash
# mp::mpi::Pool vs mp::Pool on the same CPU-bound map, at 2 and 4 workers (serving ranks /
# worker processes). Usage: bench/mpi_compare.sh [build dir, default build/release]
# (configure and build first: cmake --preset release && cmake --build build/release --target mp_bench_mpi)
set -euo pipefail
build=${1:-build/release}
bin=$build/bench/mp_bench_mpi
[[ -x $bin ]] || { echo "mpi_compare: $bin not built (cmake --build $build --target mp_bench_mpi)" >&2; exit 2; }
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_mpi_warn_on_fork=0
run=(mpirun --oversubscribe)
[[ $(id -u) == 0 ]] && run+=(--allow-run-as-root)
"${run[@]}" -n 3 "$bin" --header
"${run[@]}" -n 5 "$bin"
