/// Marks a ``Tensor`` read from a numpy array or scalar (``DataGlobals``), so that a writer emits
/// numpy's own pickle for it (`_reconstruct` and `BUILD`, or `scalar`) and
/// `torch.load(weights_only=False)` gives back a numpy value rather than a torch tensor.
public struct NumpyOrigin: Sendable, Hashable {
    /// What the pickle made.
    public enum Kind: String, Sendable, CaseIterable {
        /// A `numpy.ndarray`.
        case array
        /// A numpy scalar (`numpy.float64(1.5)`): a 0-dim tensor.
        case scalar
    }

    /// Array or scalar.
    public var kind: Kind
    /// numpy's module as the pickle spelled it, kept so files from numpy 1.x read there again:
    /// `numpy._core.multiarray` (numpy 2) or `numpy.core.multiarray` (numpy 1.x).
    public var module: String

    /// numpy 2's module (`numpy._core.multiarray`), which numpy 1.26 reads too.
    public static let currentModule = "numpy._core.multiarray"

    /// Creates a mark.
    ///
    /// - Parameters:
    ///   - kind: Array or scalar.
    ///   - module: numpy's module (``currentModule`` or `numpy.core.multiarray`).
    public init(_ kind: Kind, module: String = NumpyOrigin.currentModule) {
        self.kind = kind
        self.module = module
    }
}
