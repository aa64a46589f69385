# The fuzz targets (STARFLOW_FUZZ=ON, clang-16, in their own build folder: tools/fuzz.sh configures build-fuzz
# and runs them; FUZZING.md). Included by the top-level CMakeLists.txt before its libraries, so that every
# library compiled in this build is instrumented for libFuzzer (coverage), AddressSanitizer and
# UndefinedBehaviorSanitizer; each target links libFuzzer's main. `fuzz_all` builds the targets and only the
# libraries they link.
if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR "STARFLOW_FUZZ=ON needs clang (CC=clang-16 CXX=clang++-16; tools/fuzz.sh does this)")
endif()
add_compile_options("$<$<COMPILE_LANGUAGE:CXX>:-fsanitize=fuzzer-no-link,address,undefined;-fno-sanitize-recover=undefined;-fno-omit-frame-pointer;-O1;-g>")
add_link_options(-fsanitize=address,undefined)

# Target (tests/fuzz/fuzz_<name>.cpp) -> the lowest library that holds its parser.
set(STARFLOW_FUZZ_TARGETS
    safetensors:starflow_core sharded_index:starflow_core word_vectors:starflow_core
    word_vector_cache:starflow_core t5_config:starflow_core sd_vae_config:starflow_core
    png:starflow_data_io idx:starflow_data_io
    latent_shard:starflow_data latent_shard_bytes:starflow_data
    checkpoint:starflow_jobs train_config:starflow_jobs preprocess_config:starflow_jobs
    preprocess_manifest:starflow_jobs)
add_custom_target(fuzz_all)
foreach(entry ${STARFLOW_FUZZ_TARGETS})
  string(REPLACE ":" ";" entry ${entry})
  list(GET entry 0 name)
  list(GET entry 1 library)
  add_executable(fuzz_${name} EXCLUDE_FROM_ALL ${CMAKE_CURRENT_LIST_DIR}/fuzz_${name}.cpp)
  target_link_libraries(fuzz_${name} PRIVATE ${library})  # defined further down the top-level file
  target_link_options(fuzz_${name} PRIVATE -fsanitize=fuzzer)
  add_dependencies(fuzz_all fuzz_${name})
endforeach()
