"""A run of one probe on one model: prepare the folder, drive the cases through the
model, finish with results.csv and a summary; and sweeps of several models."""
