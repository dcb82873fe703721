"""The parts of bench/bench_pipeline.py: the processes it runs and the rows it measures."""
