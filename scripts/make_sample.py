"""Writes Samples/data/tiny-run.pt: a real training checkpoint for `make demo` (run with the torch venv)."""
import sys

import torch

torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
opt = torch.optim.Adagrad(model.parameters(), lr=0.05, lr_decay=1e-4, weight_decay=1e-5)
for _ in range(5):
    opt.zero_grad()
    loss = model(torch.randn(32, 8)).pow(2).mean()
    loss.backward()
    opt.step()
torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 5, "loss": loss.item()},
           sys.argv[1] if len(sys.argv) > 1 else "Samples/data/tiny-run.pt")
