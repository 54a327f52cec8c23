"""What the benchmarks share: processes they start and always stop (``processes``), a
light kept-alive HTTP client (``client``), nearest-rank statistics (``stats``), client
threads that make a fixed number of calls (``load``), CPU metering of the processes
started (``cpu``), and targets, verdicts and the machine line (``report``).

No Django here: the benchmarks import it before they set Django up, or never do.
"""
