import Checkpoint
print("sample: not written yet")
