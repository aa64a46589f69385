// agree_on_error: gather every rank's error on rank 0, summarise, broadcast the one-line summary.
#include "parallel/error_agreement.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

namespace starflow::parallel {
namespace {

constexpr size_t kRanksNamed = 8, kErrorsNamed = 4;

std::string summarise(const std::vector<std::string>& errors) {
  std::vector<std::pair<std::string, std::vector<int>>> distinct;  // in order of the first rank that hit each
  for (int r = 0; r < static_cast<int>(errors.size()); ++r) {
    if (errors[r].empty()) continue;
    auto it = std::find_if(distinct.begin(), distinct.end(), [&](const auto& d) { return d.first == errors[r]; });
    if (it == distinct.end()) distinct.push_back({errors[r], {r}});
    else it->second.push_back(r);
  }
  if (distinct.size() == 1 && distinct[0].second.size() == errors.size()) return distinct[0].first;
  std::string summary;
  for (size_t d = 0; d < distinct.size() && d < kErrorsNamed; ++d) {
    const std::vector<int>& ranks = distinct[d].second;
    if (d) summary += "; ";
    summary += ranks.size() == 1 ? "rank " : "ranks ";
    for (size_t i = 0; i < ranks.size() && i < kRanksNamed; ++i) summary += (i ? ", " : "") + std::to_string(ranks[i]);
    if (ranks.size() > kRanksNamed) summary += " and " + std::to_string(ranks.size() - kRanksNamed) + " more";
    summary += ": " + distinct[d].first;
  }
  if (distinct.size() > kErrorsNamed)
    summary += "; and " + std::to_string(distinct.size() - kErrorsNamed) + " other errors on other ranks";
  return summary;
}

}  // namespace

void agree_on_error(MPI_Comm comm, const std::string& local_error) {
  int failed = local_error.empty() ? 0 : 1, any = 0;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, comm);
  if (!any) return;
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  const int length = static_cast<int>(local_error.size());
  std::vector<int> lengths(rank == 0 ? size : 0), offsets(lengths.size());
  MPI_Gather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, 0, comm);
  std::string all;
  if (rank == 0) {
    for (int r = 0, at = 0; r < size; at += lengths[r], ++r) offsets[r] = at;
    all.resize(static_cast<size_t>(offsets.back() + lengths.back()));
  }
  MPI_Gatherv(local_error.data(), length, MPI_CHAR, all.data(), lengths.data(), offsets.data(), MPI_CHAR, 0, comm);
  std::string summary;
  if (rank == 0) {
    std::vector<std::string> errors(size);
    for (int r = 0; r < size; ++r) errors[r] = all.substr(offsets[r], lengths[r]);
    summary = summarise(errors);
  }
  int summary_length = static_cast<int>(summary.size());
  MPI_Bcast(&summary_length, 1, MPI_INT, 0, comm);
  summary.resize(summary_length);
  MPI_Bcast(summary.data(), summary_length, MPI_CHAR, 0, comm);
  throw AgreedError(summary);
}

void print_error_once(MPI_Comm comm, const std::exception& error, const char* prefix) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  if (dynamic_cast<const AgreedError*>(&error) && rank != 0) return;
  std::fprintf(stderr, "%s: %s\n", prefix, error.what());
  std::fflush(stderr);
}

void abort_job_for_local_error(MPI_Comm comm, const std::exception& error, const char* prefix, int status) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  std::fprintf(stderr, "%s: rank %d of %d: %s; ending the job (the other ranks cannot finish the step without it)\n",
               prefix, rank, size, error.what());
  std::fflush(stderr);
  MPI_Abort(comm, status);
  std::_Exit(status);  // MPI_Abort does not return; if it did, this process still must not
}

}  // namespace starflow::parallel
