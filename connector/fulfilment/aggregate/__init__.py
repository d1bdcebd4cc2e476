"""Aggregate queries (DESIGN.md §4): CCDL cohorts and measures answered as MeasureReports."""
