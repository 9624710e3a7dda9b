"""Rendering results for people: terminal tables, the Markdown report and the HTML report."""

REPORT_HTML = "report.html"  # in analytics/; named here so that the pipeline need not load the renderer to find it
