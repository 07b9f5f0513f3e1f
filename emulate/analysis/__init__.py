"""What runs' folders hold, read back: results.csv rows, summaries, statistics,
reports, comparisons between runs, exports and rescoring."""
