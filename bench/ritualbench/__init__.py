"""bench/run's benchmarks, one module per concern (bench/README.md has the map).

Shared by both benchmarks: common (repository, CPUs, log, formats), procfs (CPU
time, RSS and backend from /proc), servers (server processes), generator (load
generator processes), machine, session (what a run does before and after its
measurements), report (the JSON file and the reports' shared markdown) and charts.

The echo benchmark: echo_config (its rows, cells, modes and targets), echo_load,
echo_idle, echo_summary, echo_scaling, echo_report, and echo_run, which runs it.
The HTTP benchmark: http_config, http_load, http_report, and http_run; http_session
is what it shares with the TLS benchmark (`bench/run http --tls`): tls_config,
tls_load, tls_report, and tls_run.

Imports go one way, from the *_run modules towards common: nothing imports a
*_run module, and the shared modules import no benchmark's.
"""
