// mpiCheck: every MPI call is checked, and a failure becomes an exception naming the call site and MPI's
// own error string (MPI_ERRORS_RETURN must be set on the communicator or file for errors to come back).
#pragma once
#include <mpi.h>

#include <stdexcept>
#include <string>

namespace starflow::parallel {

inline void mpi_check(int code, const char* call, const char* file, int line) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  throw std::runtime_error(std::string(call) + " failed at " + file + ":" + std::to_string(line) + ": " +
                           std::string(text, len));
}

}  // namespace starflow::parallel

#define mpiCheck(call) ::starflow::parallel::mpi_check((call), #call, __FILE__, __LINE__)
