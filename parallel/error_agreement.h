// Errors that happen on some ranks only (a node without the mount, a full disk, one corrupt shard): every rank
// learns of them at the same point and stops together, instead of one rank throwing while the others wait in
// the next collective; and the job reports them once, from rank 0 (a thousand ranks failing alike print one
// line, not a thousand; a failure on one node still names its ranks).
#pragma once
#include <mpi.h>

#include <exception>
#include <stdexcept>
#include <string>

namespace starflow::parallel {

// Thrown by agree_on_error with the same message on every rank of the communicator.
class AgreedError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Collective over comm: when any rank's `local_error` is non-empty, every rank throws the same AgreedError.
// Its message is the error itself when every rank failed alike, else each distinct error after the ranks it
// happened on ("rank 1: <error>", "ranks 0, 2: <error>"), joined by "; " (at most 8 ranks and 4 distinct
// errors are spelled out). Otherwise returns on every rank.
void agree_on_error(MPI_Comm comm, const std::string& local_error);

// Ends a job whose other ranks cannot go on without this one (an error on one rank inside a training loop, whose
// every step has collectives: the others would wait in the next one until the watchdog's limit): prints
// "<prefix>: rank R of N: <what>; ending the job" on stderr and calls MPI_Abort(comm, status) at once.
[[noreturn]] void abort_job_for_local_error(MPI_Comm comm, const std::exception& error, const char* prefix, int status);

// What a command prints for an error that ends it: "<prefix>: <what>" on stderr, once for an AgreedError
// (from rank 0 of comm), from every rank for anything else (those can differ between ranks).
void print_error_once(MPI_Comm comm, const std::exception& error, const char* prefix);

}  // namespace starflow::parallel
