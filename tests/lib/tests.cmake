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

# The bench's histogram, compiled from the program's source.
add_executable(test_histogram test_histogram.c ${PROJECT_SOURCE_DIR}/programs/ritual/histogram.c)
target_include_directories(test_histogram PRIVATE ${PROJECT_SOURCE_DIR}/programs/ritual)
target_link_libraries(test_histogram PRIVATE ritual_testsupport m)
add_test(NAME histogram COMMAND test_histogram)
set_tests_properties(histogram PROPERTIES TIMEOUT 30 LABELS library ENVIRONMENT "${RITUAL_TEST_ENV}")
ritual_library_test(lib_reentrancy 60)
ritual_library_test(lib_post 60)
ritual_library_test(lib_server 120)
ritual_library_test(http_parser 120)
ritual_library_test(lib_sendfile 60)
ritual_library_test(lib_http 60)
# io_uring: the buffer ring running dry (1,000 connections), closes with
# operations in flight, loops freed unrun or on another thread, the fallback.
ritual_library_test(lib_uring 120)
# A clean hang-up (both directions shut) while paused is not a reset: the
# last bytes, on_eof, then an orderly close.
ritual_library_test(lib_hangup 30)
# The input a connection holds never passes read_buffer_size, however its
# reading stops and resumes, on every backend.
ritual_library_test(lib_input_bound 90)
# Queued output is what the kernel has not taken, on every backend: small
# writes the kernel takes are never queued, refused ones always are.
ritual_library_test(lib_queued 30)
# A server's workers all run on one backend, even when an address-space
# limit leaves room for only some io_uring rings.
ritual_library_test(lib_server_backend 30)
# fd watchers: readable and writable interest on the application's own
# descriptors, freed from their own callbacks, the same refusals everywhere.
ritual_library_test(lib_watch 60)
# No file includes a header of a layer above its own (scripts/check-layers).
add_test(NAME layers COMMAND python3 ${PROJECT_SOURCE_DIR}/scripts/check-layers
         ${PROJECT_SOURCE_DIR})
set_tests_properties(layers PROPERTIES TIMEOUT 30 LABELS library)
