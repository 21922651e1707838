# Third-party dependencies, all from Debian 12 packages (scripts/install-deps.sh installs them).
find_package(PkgConfig REQUIRED)
find_package(OpenSSL 3.0 REQUIRED)
find_package(ZLIB REQUIRED)
pkg_check_modules(LIBUV REQUIRED IMPORTED_TARGET libuv)
pkg_check_modules(LIBZIP REQUIRED IMPORTED_TARGET libzip)
if(ET_BUILD_TESTS)
  pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
endif()

# llhttp: Debian's node-llhttp ships the generated C sources; we build them as a static library.
set(ET_LLHTTP_SRC_DIR "/usr/share/llhttp" CACHE PATH "llhttp C sources (node-llhttp)")
set(ET_LLHTTP_INC_DIR "/usr/share/include/llhttp" CACHE PATH "llhttp header (node-llhttp)")
if(NOT EXISTS ${ET_LLHTTP_SRC_DIR}/llhttp.c OR NOT EXISTS ${ET_LLHTTP_INC_DIR}/llhttp.h)
  message(FATAL_ERROR "llhttp sources not found in ${ET_LLHTTP_SRC_DIR}: install node-llhttp")
endif()
add_library(et_llhttp STATIC
  ${ET_LLHTTP_SRC_DIR}/llhttp.c ${ET_LLHTTP_SRC_DIR}/api.c ${ET_LLHTTP_SRC_DIR}/http.c)
target_include_directories(et_llhttp SYSTEM PUBLIC ${ET_LLHTTP_INC_DIR})
# Generated third-party code: do not apply our warnings to it.
target_compile_options(et_llhttp PRIVATE -w)
set_target_properties(et_llhttp PROPERTIES POSITION_INDEPENDENT_CODE ON)

# libwbxml is a test oracle and a benchmark peer only, never linked into eastrace itself.
pkg_check_modules(LIBWBXML IMPORTED_TARGET libwbxml2)
pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson)
