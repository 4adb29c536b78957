"""`make bench`: cold start, warm latency, size, memory and local load, against baselines, in one run."""
