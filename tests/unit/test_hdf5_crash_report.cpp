// install_hdf5_crash_report: a fatal signal on a thread inside HDF5 names the file first, and only then.
// Each case runs in a fresh process (death tests), where the signal really ends it.
#include <gtest/gtest.h>
#include <signal.h>

#include <thread>

#include "data/hdf5_check.h"

namespace starflow::data {
namespace {

TEST(Hdf5CrashReport, AFatalSignalInsideHdf5NamesTheFileAndStillEndsTheProcess) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        install_hdf5_crash_report(3);
        Hdf5Lock lock("/data/shard-00042.h5");
        raise(SIGSEGV);
      },
      ::testing::KilledBySignal(SIGSEGV),
      "^starflow: rank 3: SIGSEGV inside HDF5 on /data/shard-00042\\.h5: the file is probably damaged \\(check it "
      "with h5dump, or write it again\\)\n$");
  // HDF5's own abort() (a failed assertion in the library), without a rank (one process).
  EXPECT_EXIT(
      {
        install_hdf5_crash_report(-1);
        Hdf5Lock lock("shard.h5");
        abort();
      },
      ::testing::KilledBySignal(SIGABRT), "^starflow: SIGABRT inside HDF5 on shard\\.h5: ");
}

TEST(Hdf5CrashReport, NestedLocksNameTheEnclosingFileAgainAfterTheInnerOne) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        install_hdf5_crash_report(0);
        Hdf5Lock outer("a.h5");
        { Hdf5Lock inner("b.h5"); }
        Hdf5Lock plain;  // no path: keeps a.h5
        raise(SIGBUS);
      },
      ::testing::KilledBySignal(SIGBUS), "^starflow: rank 0: SIGBUS inside HDF5 on a\\.h5: ");
}

TEST(Hdf5CrashReport, ACrashOutsideHdf5NamesNoFile) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  // After the lock is released, and on another thread while this one holds it: no line.
  EXPECT_EXIT(
      {
        install_hdf5_crash_report(0);
        { Hdf5Lock lock("a.h5"); }
        raise(SIGSEGV);
      },
      ::testing::KilledBySignal(SIGSEGV), "^$");
  EXPECT_EXIT(
      {
        install_hdf5_crash_report(0);
        Hdf5Lock lock("a.h5");
        std::thread([] { raise(SIGSEGV); }).join();
      },
      ::testing::KilledBySignal(SIGSEGV), "^$");
}

}  // namespace
}  // namespace starflow::data
