# CMake functions of the model library, included by fuzz/model/CMakeLists.txt and by
# property_tests/CMakeLists.txt (which, with MESH_BUILD_FUZZ=ON, is read before fuzz/).
# The model fills and checks objects with the harness's byte patterns (harness/pattern.h).
include(${CMAKE_CURRENT_LIST_DIR}/../../stress/support/harness_support.cmake)

# mesh_alloc_model_library(<name> <core>): the model over the heap library <core> (mesh_core,
# or the fuzz build's instrumented copy of it).
function(mesh_alloc_model_library name core)
  set(dir ${CMAKE_CURRENT_FUNCTION_LIST_DIR})
  add_library(${name} STATIC
    ${dir}/ops.cc
    ${dir}/alloc_model.cc
    ${dir}/other_thread.cc
    ${dir}/heap_executor.cc
    ${dir}/process_executor.cc
  )
  # Sources include "model/ops.h" and friends.
  target_include_directories(${name} PUBLIC ${dir}/..)
  target_link_libraries(${name} PUBLIC ${core} Threads::Threads ${CMAKE_DL_LIBS})
  target_link_libraries(${name} PRIVATE harness_support)
  # The process executor must reach the allocator on every call, never a folded builtin.
  target_compile_options(${name} PRIVATE -fno-builtin-malloc -fno-builtin-calloc
                                         -fno-builtin-realloc -fno-builtin-free)
  mesh_warnings(${name})
endfunction()

# Applies MESH_SANITIZER (top-level option) to a target of the property or fuzz directories.
function(mesh_model_sanitize target)
  if(MESH_SANITIZER)
    target_compile_options(${target} PRIVATE ${MESH_SANITIZER_FLAGS})
    target_link_options(${target} PRIVATE -fsanitize=${MESH_SANITIZER})
  endif()
endfunction()
