"""``make bench``: vaegan's training speed and memory against the alternatives, side by side.

Every number is a ratio of two variants timed in interleaved repeats on the same machine, so
a noisy, shared machine moves both sides alike. ``python -m vaegan.bench --help``.
"""
