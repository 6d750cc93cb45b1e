"""Local US Direct and Flxpoint-like API servers for the demo, the tests and the benchmarks."""
