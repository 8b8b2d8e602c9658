"""ff's load-test harness (`ff bench`): scenarios, the raw-Valkey baseline and peer runs.

Modules: `harness` (report, timing, host facts, progress), `scenario1`, `baseline`,
`procs` (consumers in child processes), `peers` (other job queues, each in its own
virtualenv), `cli` (the `ff bench` sub-command). Nothing in `ff` imports this package
except the command line. How to run and read it: bench/README.md; results on the project
machine: bench/results/README.md.
"""
