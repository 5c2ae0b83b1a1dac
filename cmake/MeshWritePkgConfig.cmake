# Runs at install time (from the install(CODE) in MeshInstall.cmake): writes mesh.pc for the
# prefix being installed to. Inputs: MESH_PC_TEMPLATE, MESH_PC_VERSION, MESH_PC_LIBDIR and
# MESH_PC_INCLUDEDIR (relative to the prefix, or absolute), plus CMAKE_INSTALL_PREFIX and the
# DESTDIR environment variable as cmake --install sets them.

# A relative --prefix is taken relative to the directory cmake --install runs in.
get_filename_component(_mesh_prefix "${CMAKE_INSTALL_PREFIX}" ABSOLUTE)

# pkg-config paths: relative directories are written as ${prefix}/DIR, absolute ones verbatim.
foreach(_mesh_kind IN ITEMS LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${MESH_PC_${_mesh_kind}}")
    set(MESH_PC_${_mesh_kind}_VALUE "${MESH_PC_${_mesh_kind}}")
    set(_mesh_${_mesh_kind}_abs "${MESH_PC_${_mesh_kind}}")
  else()
    set(MESH_PC_${_mesh_kind}_VALUE "\${prefix}/${MESH_PC_${_mesh_kind}}")
    set(_mesh_${_mesh_kind}_abs "${_mesh_prefix}/${MESH_PC_${_mesh_kind}}")
  endif()
endforeach()
set(MESH_PC_PREFIX "${_mesh_prefix}")

set(_mesh_pc_file "$ENV{DESTDIR}${_mesh_LIBDIR_abs}/pkgconfig/mesh.pc")
message(STATUS "Installing: ${_mesh_pc_file}")
configure_file("${MESH_PC_TEMPLATE}" "${_mesh_pc_file}" @ONLY)
# Listed in install_manifest.txt like every other installed file.
list(APPEND CMAKE_INSTALL_MANIFEST_FILES "${_mesh_LIBDIR_abs}/pkgconfig/mesh.pc")
