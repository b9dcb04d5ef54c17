// The Optim module: optimizers with PyTorch's state_dict semantics (see issue 3).
import Checkpoint
