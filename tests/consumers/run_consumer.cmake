# Configure, build and run one consumer project in a scratch build tree (cmake -P script).
#   STASH_CONSUMER_SOURCE_DIR   the consumer's source tree
#   STASH_CONSUMER_BINARY_DIR   scratch build tree (wiped first)
#   STASH_CONSUMER_PREFIX       install prefix holding stash (find_package consumer only)
#   STASH_CONSUMER_GENERATOR, STASH_CONSUMER_CXX_COMPILER, STASH_CONSUMER_BUILD_TYPE,
#   STASH_CONSUMER_CUDA_ROOT    passed through from the outer build
#   STASH_CONSUMER_README       README.md: its Quickstart program is written out as the consumer's
#                               second program, so the snippet is compiled, linked and run as written
cmake_minimum_required(VERSION 3.25)

foreach(var IN ITEMS STASH_CONSUMER_SOURCE_DIR STASH_CONSUMER_BINARY_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_consumer.cmake: ${var} is not set")
  endif()
endforeach()

set(config "${STASH_CONSUMER_BUILD_TYPE}")
if(NOT config)
  set(config Debug)
endif()

set(configure_args -S "${STASH_CONSUMER_SOURCE_DIR}" -B "${STASH_CONSUMER_BINARY_DIR}"
  "-DCMAKE_BUILD_TYPE=${config}")
if(STASH_CONSUMER_GENERATOR)
  list(APPEND configure_args -G "${STASH_CONSUMER_GENERATOR}")
endif()
if(STASH_CONSUMER_CXX_COMPILER)
  list(APPEND configure_args "-DCMAKE_CXX_COMPILER=${STASH_CONSUMER_CXX_COMPILER}")
endif()
if(STASH_CONSUMER_PREFIX)
  # Only the scratch prefix: a stash installed elsewhere on the machine must not satisfy the test.
  list(APPEND configure_args "-DCMAKE_PREFIX_PATH=${STASH_CONSUMER_PREFIX}"
    "-Dstash_ROOT=${STASH_CONSUMER_PREFIX}")
endif()
if(STASH_CONSUMER_CUDA_ROOT)
  list(APPEND configure_args "-DCUDAToolkit_ROOT=${STASH_CONSUMER_CUDA_ROOT}")
endif()

if(STASH_CONSUMER_README)
  # The first ```cpp block after the "## Quickstart" heading, verbatim.
  file(READ "${STASH_CONSUMER_README}" readme)
  string(FIND "${readme}" "\n## Quickstart" section)
  if(section EQUAL -1)
    message(FATAL_ERROR "consumer: no '## Quickstart' section in ${STASH_CONSUMER_README}")
  endif()
  string(SUBSTRING "${readme}" ${section} -1 readme)
  string(FIND "${readme}" "```cpp\n" open)
  if(open EQUAL -1)
    message(FATAL_ERROR "consumer: no ```cpp block in the Quickstart section of ${STASH_CONSUMER_README}")
  endif()
  math(EXPR open "${open} + 7")
  string(SUBSTRING "${readme}" ${open} -1 readme)
  string(FIND "${readme}" "```" close)
  string(SUBSTRING "${readme}" 0 ${close} quickstart)
  set(quickstart_file "${STASH_CONSUMER_BINARY_DIR}-readme/readme_quickstart.cpp")
  file(WRITE "${quickstart_file}" "${quickstart}")
  list(APPEND configure_args "-DSTASH_README_QUICKSTART=${quickstart_file}")
endif()

function(run_step what)
  message(STATUS "consumer: ${what}: ${ARGN}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE result)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "consumer: ${what} failed (${result})")
  endif()
endfunction()

file(REMOVE_RECURSE "${STASH_CONSUMER_BINARY_DIR}")
run_step(configure "${CMAKE_COMMAND}" ${configure_args})
run_step(build "${CMAKE_COMMAND}" --build "${STASH_CONSUMER_BINARY_DIR}" --config "${config}")
run_step(run "${CMAKE_CTEST_COMMAND}" --test-dir "${STASH_CONSUMER_BINARY_DIR}" -C "${config}"
  --output-on-failure --no-tests=error)
