"""What a run leaves behind and how it is read back: the results file (``results``), the history of
runs and the comparisons across them (``history``, ``regressions``), the code a run measured
(``source``), and exports for other tools (``export``,
``pytest_benchmark``). A new file format goes here.

Imports ``engine`` and everything below it."""
