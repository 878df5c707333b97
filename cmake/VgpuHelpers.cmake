# vgpu_cc_library / vgpu_cc_test / vgpu_cc_fuzz / vgpu_cc_binary: every target
# gets the same warnings, hardening and sanitizer flags from here.
include_guard(GLOBAL)

set(VGPU_ROOT "${CMAKE_CURRENT_LIST_DIR}/..")

function(vgpu_apply_flags target strict)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wshadow -Wformat=2 -Wvla -Wimplicit-fallthrough
    -Wnon-virtual-dtor -fno-exceptions)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    target_compile_options(${target} PRIVATE -Wthread-safety
      -Winconsistent-missing-override -ftrivial-auto-var-init=pattern)
  else()
    target_compile_options(${target} PRIVATE -Wsuggest-override
      -ftrivial-auto-var-init=zero)
  endif()
  if(strict)
    target_compile_options(${target} PRIVATE -Wconversion -Wsign-conversion)
  endif()
  if(VGPU_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# Sanitizer and hardening flags apply to the whole build so that every object
# (and the gtest main) agrees on them.
if(VGPU_SANITIZE STREQUAL "address")
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined
    -fno-omit-frame-pointer -D_GLIBCXX_ASSERTIONS)
  add_link_options(-fsanitize=address,undefined)
elseif(VGPU_SANITIZE STREQUAL "thread")
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
elseif(NOT VGPU_SANITIZE STREQUAL "")
  message(FATAL_ERROR "VGPU_SANITIZE must be empty, 'address' or 'thread'")
endif()
# Fuzz builds instrument every library a target links, not only the
# target's own file: libFuzzer then sees coverage of the device code.
if(VGPU_FUZZ)
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
if(CMAKE_BUILD_TYPE STREQUAL "Debug")
  add_compile_options(-D_GLIBCXX_ASSERTIONS)
elseif(CMAKE_BUILD_TYPE STREQUAL "Release" AND VGPU_SANITIZE STREQUAL "")
  add_compile_options(-fstack-protector-strong -D_FORTIFY_SOURCE=2)
endif()

# vgpu_cc_library(NAME n SRCS ... DEPS ... [STRICT])  ->  vgpu_n, alias vgpu::n
function(vgpu_cc_library)
  cmake_parse_arguments(A "STRICT" "NAME" "SRCS;DEPS" ${ARGN})
  add_library(vgpu_${A_NAME} STATIC ${A_SRCS})
  add_library(vgpu::${A_NAME} ALIAS vgpu_${A_NAME})
  target_include_directories(vgpu_${A_NAME} PUBLIC ${VGPU_ROOT})
  target_link_libraries(vgpu_${A_NAME} PUBLIC ${A_DEPS})
  vgpu_apply_flags(vgpu_${A_NAME} ${A_STRICT})
endfunction()

# vgpu_cc_test(NAME n SRCS ... DEPS ...): one gtest binary, tests discovered.
function(vgpu_cc_test)
  cmake_parse_arguments(A "" "NAME;TIMEOUT" "SRCS;DEPS" ${ARGN})
  if(NOT A_TIMEOUT)
    set(A_TIMEOUT 120)
  endif()
  add_executable(${A_NAME} ${A_SRCS})
  target_include_directories(${A_NAME} PRIVATE ${VGPU_ROOT})
  target_link_libraries(${A_NAME} PRIVATE ${A_DEPS} GTest::gmock GTest::gtest_main)
  vgpu_apply_flags(${A_NAME} OFF)
  gtest_discover_tests(${A_NAME} DISCOVERY_TIMEOUT 60
    PROPERTIES TIMEOUT ${A_TIMEOUT} LABELS unit)
endfunction()

function(vgpu_cc_binary)
  cmake_parse_arguments(A "" "NAME" "SRCS;DEPS" ${ARGN})
  add_executable(${A_NAME} ${A_SRCS})
  target_include_directories(${A_NAME} PRIVATE ${VGPU_ROOT})
  target_link_libraries(${A_NAME} PRIVATE ${A_DEPS})
  vgpu_apply_flags(${A_NAME} OFF)
endfunction()

# vgpu_cc_fuzz(NAME n SRCS ... DEPS ... CORPUS dir)
# With VGPU_FUZZ (clang): a libFuzzer binary. Otherwise: a corpus-replay
# binary registered as a test, so every build runs the committed corpus.
function(vgpu_cc_fuzz)
  cmake_parse_arguments(A "" "NAME;CORPUS" "SRCS;DEPS" ${ARGN})
  add_executable(${A_NAME} ${A_SRCS})
  target_include_directories(${A_NAME} PRIVATE ${VGPU_ROOT})
  target_link_libraries(${A_NAME} PRIVATE ${A_DEPS})
  vgpu_apply_flags(${A_NAME} OFF)
  if(VGPU_FUZZ)
    target_compile_options(${A_NAME} PRIVATE -fsanitize=fuzzer)
    target_link_options(${A_NAME} PRIVATE -fsanitize=fuzzer)
  else()
    target_sources(${A_NAME} PRIVATE ${VGPU_ROOT}/tests/fuzz/corpus_replay.cc)
    add_test(NAME ${A_NAME}_corpus COMMAND ${A_NAME} ${A_CORPUS})
    set_tests_properties(${A_NAME}_corpus PROPERTIES TIMEOUT 120 LABELS fuzz-replay)
  endif()
endfunction()
