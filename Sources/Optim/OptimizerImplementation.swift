/// Which of PyTorch's three CPU code paths for an optimizer to reproduce. They round differently,
/// so a trajectory is only bit-identical to torch's when both use the same path.
public enum OptimizerImplementation: Sendable {
    /// `foreach=False`, torch's default on CPU: one ATen op per tensor per formula step.
    case singleTensor
    /// `foreach=True`: the `_foreach_*` ops.
    case forEach
    /// `fused=True`: the optimizer's fused CPU kernel, one pass per element.
    case fused
}
