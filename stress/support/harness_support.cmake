# Adds the harness_support library (CMakeLists.txt beside this file) once, whichever directory
# asks first: the top level, or stress/, perf/ or mesh/tests/api configured on their own.
if(NOT TARGET harness_support)
  add_subdirectory(${CMAKE_CURRENT_LIST_DIR} ${CMAKE_BINARY_DIR}/harness_support)
endif()
