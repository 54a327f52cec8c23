"""The monitoring stage: the prediction log, ground truth and live metrics, drift and
monitor rules, alerts."""
