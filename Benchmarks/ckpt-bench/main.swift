import Checkpoint
print("benchmarks: not written yet")
