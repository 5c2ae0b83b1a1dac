# Installation of libmesh: `cmake --install <build> [--prefix DIR]` puts under the prefix
#
#   <libdir>/libmesh.so.0.1.0, libmesh.so.0, libmesh.so   the shared library (target mesh)
#   <libdir>/libmesh.a                                    the static library (target mesh_static)
#   <includedir>/mesh/mesh.h, *.def                       the public headers
#   <libdir>/cmake/mesh/meshConfig*.cmake, meshTargets*   find_package(mesh): mesh::mesh, mesh::mesh_static
#   <libdir>/pkgconfig/mesh.pc                            pkg-config --cflags --libs mesh
#
# <libdir> and <includedir> come from GNUInstallDirs (CMAKE_INSTALL_LIBDIR, CMAKE_INSTALL_INCLUDEDIR).
# Components: "Runtime" is the versioned shared library alone; "Development" is everything else
# (cmake --install <build> --component Runtime installs only what a program needs at run time).
#
# Included once, by the top-level CMakeLists.txt, after mesh/ has defined its targets.
include_guard(GLOBAL)

if(NOT TARGET mesh OR NOT TARGET mesh_static)
  message(FATAL_ERROR "cmake/MeshInstall.cmake: include it after add_subdirectory(mesh)")
endif()

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(MESH_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/mesh"
    CACHE STRING "Where the CMake package files of libmesh are installed (relative to the prefix)")
mark_as_advanced(MESH_INSTALL_CMAKEDIR)

# The same names in the build tree, for projects that add libmesh with add_subdirectory or
# FetchContent instead of find_package.
foreach(_mesh_target IN ITEMS mesh mesh_static)
  if(NOT TARGET mesh::${_mesh_target})
    add_library(mesh::${_mesh_target} ALIAS ${_mesh_target})
  endif()
endforeach()

# mesh/CMakeLists.txt names the installed include directory "include". When the include
# directory is configured elsewhere, point the exported targets at it instead (otherwise
# find_package(mesh) would fail on a directory that does not exist).
if(NOT CMAKE_INSTALL_INCLUDEDIR STREQUAL "include")
  foreach(_mesh_target IN ITEMS mesh mesh_static)
    get_target_property(_mesh_dirs ${_mesh_target} INTERFACE_INCLUDE_DIRECTORIES)
    string(REPLACE "$<INSTALL_INTERFACE:include>" "$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>"
           _mesh_dirs "${_mesh_dirs}")
    set_property(TARGET ${_mesh_target} PROPERTY INTERFACE_INCLUDE_DIRECTORIES "${_mesh_dirs}")
  endforeach()
endif()

install(TARGETS mesh mesh_static
  EXPORT meshTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT Runtime NAMELINK_COMPONENT Development
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT Development
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT Runtime)

# Every public header (mesh.h includes the .def tables, so they travel with it).
install(DIRECTORY ${PROJECT_SOURCE_DIR}/mesh/include/mesh/
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/mesh
  COMPONENT Development
  FILES_MATCHING PATTERN "*.h" PATTERN "*.def")

# --- CMake package -------------------------------------------------------------------------------
install(EXPORT meshTargets
  NAMESPACE mesh::
  FILE meshTargets.cmake
  DESTINATION ${MESH_INSTALL_CMAKEDIR}
  COMPONENT Development)

# The C++ runtime libmesh.a needs when a C program links it (libstdc++ unless the build asked
# for libc++). Used by meshConfig.cmake and mesh.pc's Libs.private.
if(CMAKE_CXX_FLAGS MATCHES "-stdlib=libc\\+\\+")
  set(MESH_CXX_RUNTIME_LIBS "c++")
else()
  set(MESH_CXX_RUNTIME_LIBS "stdc++")
endif()

set(_mesh_pkg_dir "${PROJECT_BINARY_DIR}/mesh-package")
configure_package_config_file(
  ${CMAKE_CURRENT_LIST_DIR}/meshConfig.cmake.in
  ${_mesh_pkg_dir}/meshConfig.cmake
  INSTALL_DESTINATION ${MESH_INSTALL_CMAKEDIR}
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR CMAKE_INSTALL_LIBDIR)
# 0.x releases may change the API between minor versions, so a request for 0.1 accepts 0.1.y only.
write_basic_package_version_file(
  ${_mesh_pkg_dir}/meshConfigVersion.cmake
  VERSION ${mesh_VERSION}
  COMPATIBILITY SameMinorVersion)
install(FILES ${_mesh_pkg_dir}/meshConfig.cmake ${_mesh_pkg_dir}/meshConfigVersion.cmake
  DESTINATION ${MESH_INSTALL_CMAKEDIR}
  COMPONENT Development)

# --- pkg-config ----------------------------------------------------------------------------------
# The prefix is only known at install time (cmake --install --prefix overrides the configured
# one), so mesh.pc is written then, by cmake/MeshWritePkgConfig.cmake.
install(CODE "
  set(MESH_PC_TEMPLATE \"${CMAKE_CURRENT_LIST_DIR}/mesh.pc.in\")
  set(MESH_PC_VERSION \"${mesh_VERSION}\")
  set(MESH_PC_LIBDIR \"${CMAKE_INSTALL_LIBDIR}\")
  set(MESH_PC_INCLUDEDIR \"${CMAKE_INSTALL_INCLUDEDIR}\")
  set(MESH_PC_CXX_RUNTIME \"-l${MESH_CXX_RUNTIME_LIBS}\")
  include(\"${CMAKE_CURRENT_LIST_DIR}/MeshWritePkgConfig.cmake\")
" COMPONENT Development)

unset(_mesh_target)
unset(_mesh_dirs)
unset(_mesh_pkg_dir)
