import Checkpoint

/// A tensor an optimizer updates in place, with its gradient: PyTorch's `nn.Parameter`.
///
/// A reference type, because an optimizer identifies parameters by identity (as torch does with
/// `id(p)`) and its state follows the object, not the values.
public final class Parameter {
    /// The values; an optimizer's step writes into this tensor's storage.
    public var data: Tensor
    /// The gradient of the loss with respect to ``data``, or nil when none was computed (a step
    /// skips such a parameter entirely, as torch does).
    public var grad: Gradient?
    /// The name PyTorch's `named_parameters()` would give; when every parameter of a group has one
    /// the group records them as `param_names` in the optimizer's state dict.
    public let name: String?

    /// Creates a parameter.
    ///
    /// - Parameters:
    ///   - data: The values.
    ///   - name: A name such as `"layer.weight"`, or nil.
    public init(_ data: Tensor, name: String? = nil) {
        self.data = data
        self.name = name
    }
}

/// A parameter's gradient: a dense tensor or a sparse COO tensor (as `nn.Embedding(sparse=True)`
/// produces).
public enum Gradient {
    /// A gradient with the parameter's shape and dtype.
    case dense(Tensor)
    /// A sparse COO gradient whose shape and values dtype are the parameter's.
    case sparse(SparseTensor)

    /// The gradient's element type.
    public var dtype: DType {
        switch self {
        case .dense(let tensor): return tensor.dtype
        case .sparse(let sparse): return sparse.values.dtype
        }
    }

    /// True for a sparse gradient.
    public var isSparse: Bool {
        if case .sparse = self { return true }
        return false
    }
}
