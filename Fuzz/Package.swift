// swift-tools-version: 6.0
// libFuzzer targets for ckpt's readers (docs/TESTING.md, "Fuzzing"). A root package of its own, never
// a dependency, so the sanitizer flags stay out of the library: `make fuzz` (scripts/fuzz.sh) builds
// it with `-Xswiftc -sanitize=fuzzer,address`, which instruments ckpt's targets too.
import PackageDescription

// Each target exports LLVMFuzzerTestOneInput; libFuzzer supplies main, so no Swift main is generated.
let fuzzTarget: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]

let targetNames = [
    "fuzz-zip", "fuzz-pickle", "fuzz-manifest", "fuzz-safetensors", "fuzz-rename-map", "fuzz-catalog", "fuzz-roundtrip",
    "fuzz-dcp-metadata", "fuzz-sharded-index",
]

let package = Package(
    name: "ckpt-fuzz",
    platforms: [.macOS(.v14)],
    dependencies: [.package(name: "ckpt", path: "..")],
    targets: [
        // Writing an input where the public, file-based readers can open it; a stored-zip builder.
        .target(
            name: "FuzzSupport",
            dependencies: [.product(name: "Checkpoint", package: "ckpt")]
        ),
    ] + targetNames.map { name in
        .executableTarget(
            name: name,
            dependencies: [
                "FuzzSupport",
                .product(name: "Checkpoint", package: "ckpt"),
                .product(name: "Optim", package: "ckpt"),
                .product(name: "Catalog", package: "ckpt"),
            ],
            swiftSettings: fuzzTarget
        )
    }
)
