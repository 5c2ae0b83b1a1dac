# ctest's fuzz.replay-corpus and fuzz.replay-regressions: runs HARNESS (with HARNESS_ARGS) on every
# file of DIR, and fails when DIR holds no input besides its README.md (a replay of nothing
# proves nothing) or when the harness fails on one.
#   cmake -DHARNESS=<exe> [-DHARNESS_ARGS=<arg>] -DDIR=<dir> -P replay_inputs.cmake
if(NOT HARNESS OR NOT DIR)
  message(FATAL_ERROR "usage: cmake -DHARNESS=<exe> [-DHARNESS_ARGS=<arg>] -DDIR=<dir> -P replay_inputs.cmake")
endif()
file(GLOB inputs LIST_DIRECTORIES false "${DIR}/*")
list(FILTER inputs EXCLUDE REGEX "/README\\.md$")
list(LENGTH inputs count)
if(count EQUAL 0)
  message(FATAL_ERROR "${DIR} holds no input to replay (only its README.md, or nothing)")
endif()
message(STATUS "replaying ${count} inputs of ${DIR}")
execute_process(COMMAND ${HARNESS} ${HARNESS_ARGS} ${DIR} RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "the harness failed on an input of ${DIR} (${result})")
endif()
