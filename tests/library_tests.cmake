# The library's unit tests: each links libritual and runs a loop in-process.
ritual_library_test(lib_timers 30)
ritual_library_test(lib_watermarks 60)
ritual_library_test(lib_conn 30)
ritual_library_test(lib_loops 30)
ritual_library_test(lib_teardown 30)
