# The fuzz targets (STARFLOW_FUZZ=ON, clang-16; tools/fuzz.sh configures build-fuzz and runs them). The whole
# build is instrumented with fuzzer-no-link + AddressSanitizer + UndefinedBehaviorSanitizer by the top-level
# CMakeLists.txt; each target links libFuzzer's main. `fuzz_all` builds every target.
file(GLOB STARFLOW_FUZZ_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_*.cpp)
add_custom_target(fuzz_all)
foreach(source ${STARFLOW_FUZZ_SOURCES})
  get_filename_component(target ${source} NAME_WE)
  add_executable(${target} ${source})
  target_link_libraries(${target} PRIVATE starflow_jobs)
  target_link_options(${target} PRIVATE -fsanitize=fuzzer)
  add_dependencies(fuzz_all ${target})
endforeach()
