import Testing
@testable import Optim
import CKernels

@Test func kernelsLink() { #expect(ckpt_kernels_version() == 1) }
