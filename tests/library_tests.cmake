# The library's unit tests: each links libritual and runs a loop in-process.
ritual_library_test(lib_timers 30)
ritual_library_test(lib_watermarks 60)
ritual_library_test(lib_conn 30)
ritual_library_test(lib_loops 30)
ritual_library_test(lib_teardown 30)

# make install + pkg-config + the README example, end to end. Not in the
# sanitizer build: the example is compiled there without the sanitizer runtime.
if(NOT RITUAL_SANITIZE)
  add_test(NAME install COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/install.sh
           ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR})
  set_tests_properties(install PROPERTIES TIMEOUT 60 LABELS library)
endif()
ritual_library_test(lib_connect 30)
