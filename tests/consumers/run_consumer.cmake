# Configure, build and run one consumer project in a scratch build tree (cmake -P script).
#   STASH_CONSUMER_SOURCE_DIR   the consumer's source tree
#   STASH_CONSUMER_BINARY_DIR   scratch build tree (wiped first)
#   STASH_CONSUMER_PREFIX       install prefix holding stash (find_package consumer only)
#   STASH_CONSUMER_GENERATOR, STASH_CONSUMER_CXX_COMPILER, STASH_CONSUMER_BUILD_TYPE,
#   STASH_CONSUMER_CUDA_ROOT    passed through from the outer build
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
