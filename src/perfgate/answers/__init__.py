"""Answers to a team's questions, computed from measurements and records: which stack to use
(``recommend``), may a candidate replace the current model or environment (``upgrade``, ``arms``),
which release or commit slowed a case (``bisect``), each arm timed alone (``cross_check``), which
operators got slower (``explain``; between two commits, ``explain_regression``), thresholds for a new
class (``derive``). A new question goes here.

Imports ``records`` and everything below it; never a report."""
