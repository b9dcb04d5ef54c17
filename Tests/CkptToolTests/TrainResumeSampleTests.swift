import Foundation
import Testing

/// `make demo`'s program (Samples/train-resume), built beside the tests: killed partway, the
/// trainer resumes from its manager's newest whole checkpoint (model, optimizer and learning-rate
/// scheduler) with the bits of every step's loss and learning rate intact.
struct TrainResumeSampleTests {
    static let binary = Tool.binary.deletingLastPathComponent().appendingPathComponent("train-resume")

    @Test(arguments: [(steps: 60, killAt: 37), (steps: 45, killAt: 10), (steps: 30, killAt: 29)])
    func killedRunResumesBitIdentically(steps: Int, killAt: Int) throws {
        let directory = Tool.temporaryDirectory().appendingPathComponent("run")
        let result = try Tool.run(
            executable: Self.binary, ["--dir", directory.path, "--steps", String(steps), "--kill-at", String(killAt)])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("SIGKILL at step"))
        #expect(result.stdout.contains("bit-identical to an uninterrupted run"))
        #expect(result.stdout.contains("losses and learning rates"), "the learning rates are compared too")
        #expect(!result.stdout.contains("FAILED"))
    }
}
