// CPU threads of a command: one setter for our OpenMP kernels and OpenBLAS (the OpenMP build of OpenBLAS shares
// the pool, but keeps its own count), and the per-rank default under MPI.
#pragma once

namespace starflow::tools {

// Threads for our kernels and for OpenBLAS's; n <= 0 leaves both at their defaults.
void set_cpu_threads(int n);

// CPU threads per rank: `configured` if > 0, else OMP_NUM_THREADS (how a SLURM job passes --cpus-per-task: the
// node's cores are not all ours there), else the node's cores divided among the MPI ranks on the node, so that
// mpirun -np 2 on a 2-core machine does not oversubscribe (OpenMP spin-waits collapse when it does). Needs MPI
// initialised.
int threads_per_rank(int configured);

}  // namespace starflow::tools
