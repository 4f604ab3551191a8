"""What a person reads: the Markdown summary (``report``), the HTML report (``html_report``), the
progress lines while a run measures, and the joins of many runs into one report (``merge``, the
nightly's ``night``). A new section or view goes here.

Imports ``answers`` and everything below it."""
