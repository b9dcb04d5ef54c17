// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "ckpt",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "Checkpoint", targets: ["Checkpoint"]),
        .library(name: "CheckpointTools", targets: ["CheckpointTools"]),
        .library(name: "Optim", targets: ["Optim"]),
        .library(name: "Catalog", targets: ["Catalog"]),
        .executable(name: "ckpt-tool", targets: ["ckpt-tool"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
    ],
    targets: [
        // C libraries, each behind a module map with `link` and a shim header (GRDB's layout).
        .systemLibrary(name: "CZip", path: "Sources/CZip", pkgConfig: "libzip", providers: [.apt(["libzip-dev"])]),
        .systemLibrary(name: "CDeflate", path: "Sources/CDeflate", pkgConfig: "libdeflate", providers: [.apt(["libdeflate-dev"])]),
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        // Numeric kernels in C: per-function target attributes give AVX2/AVX-512 without unsafeFlags.
        .target(name: "CKernels", path: "Sources/CKernels"),
        // Linux-only system calls (renameat2, sync_file_range) with fallbacks elsewhere, the
        // signal handler that removes in-flight temp files, and the SIGBUS handler that turns a
        // read of a mapped file that shrank into an error.
        .target(name: "CSystem", path: "Sources/CSystem"),
        // Block statistics for TensorStatistics (AVX2 variants chosen at run time).
        .target(name: "CStats", dependencies: ["CKernels"], path: "Sources/CStats"),
        .target(
            name: "Checkpoint",
            dependencies: [
                "CDeflate", "CSystem",
                .product(name: "OrderedCollections", package: "swift-collections"),
            ]
        ),
        // Diff, statistics, verification, key globs and .npy export: what ckpt-tool does with
        // checkpoints beyond loading and saving them.
        .target(
            name: "CheckpointTools",
            dependencies: [
                "Checkpoint", "CZip", "CStats",
                .product(name: "OrderedCollections", package: "swift-collections"),
            ]
        ),
        .target(
            name: "Optim",
            dependencies: [
                "Checkpoint", "CKernels",
                .product(name: "OrderedCollections", package: "swift-collections"),
            ]
        ),
        // CheckpointManager and its SQLite catalog, over Checkpoint (which has no SQLite).
        .target(
            name: "Catalog",
            dependencies: ["Checkpoint", "CSQLite"]
        ),
        .executableTarget(
            name: "ckpt-tool",
            dependencies: [
                "Checkpoint", "CheckpointTools", "Optim", "Catalog",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The benchmarks' output lines, clock, medians and bench directory.
        .target(name: "BenchSupport", path: "Benchmarks/BenchSupport"),
        .executableTarget(
            name: "ckpt-bench",
            dependencies: ["BenchSupport", "Checkpoint"],
            path: "Benchmarks/ckpt-bench"
        ),
        .executableTarget(name: "adagrad-bench", dependencies: ["Optim", "Checkpoint"], path: "Benchmarks/adagrad-bench"),
        .executableTarget(name: "stats-bench", dependencies: ["Checkpoint", "CheckpointTools"], path: "Benchmarks/stats-bench"),
        // Conversions between one file, DCP and Hugging Face shards at scale, against torch's own.
        .executableTarget(name: "layout-bench", dependencies: ["BenchSupport", "Checkpoint"], path: "Benchmarks/layout-bench"),
        .executableTarget(name: "catalog-bench", dependencies: ["BenchSupport", "Catalog", "Checkpoint", "Optim"], path: "Benchmarks/catalog-bench"),
        // `ls --json` and `latest` on a catalog of 10,000 checkpoints (scripts/bench_catalog_cli.sh).
        .executableTarget(name: "catalog-cli-bench", dependencies: ["BenchSupport", "Catalog", "Checkpoint"], path: "Benchmarks/catalog-cli-bench"),
        // `make demo`: a training run killed partway that resumes bit-identically through Catalog.
        .executableTarget(name: "train-resume", dependencies: ["Catalog", "Checkpoint", "Optim"], path: "Samples/train-resume"),
        .executableTarget(name: "optim-resume", dependencies: ["Checkpoint", "Optim"], path: "Samples/optim-resume"),
        .executableTarget(
            name: "convert-and-inspect",
            dependencies: ["Checkpoint"],
            path: "Samples/convert-and-inspect"
        ),
        // Seeded RNG, self-removing temp directories and the torch-venv lookup for every test target.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "CheckpointTests", dependencies: ["Checkpoint", "TestSupport"]),
        .testTarget(name: "CheckpointToolsTests", dependencies: ["CheckpointTools", "Checkpoint", "TestSupport"]),
        // Killed at random points by CatalogTests' crash tests; also their second process.
        .executableTarget(name: "catalog-crash", dependencies: ["Catalog", "Checkpoint"], path: "Tests/catalog-crash"),
        .testTarget(name: "CatalogTests", dependencies: ["Catalog", "Checkpoint", "TestSupport"]),
        // Broken on purpose by FaultInjectionTests: reads a file cut under it, saves under a file
        // size limit, without permission, and through a storm of signals.
        .executableTarget(name: "fault-child", dependencies: ["CSQLite", "CSignalStorm", "Catalog", "Checkpoint"], path: "Tests/fault-child"),
        // Signals every thread of fault-child (tgkill), which Swift's Glibc module cannot name.
        .target(name: "CSignalStorm", path: "Tests/CSignalStorm"),
        .testTarget(name: "OptimTests", dependencies: ["Optim", "Checkpoint", "TestSupport"]),
        // Uses Checkpoint and Optim as a package outside this one would: public API only, no
        // @testable import, no OrderedCollections.
        .testTarget(name: "PublicAPITests", dependencies: ["Catalog", "Checkpoint", "CheckpointTools", "Optim", "TestSupport"]),
        // A run saved through Catalog's CheckpointManager with Optim's TrainingState and resumed,
        // against torch's own run (public API only: the two modules meet only here and in samples).
        .testTarget(name: "ResumeTests", dependencies: ["Catalog", "Checkpoint", "Optim", "TestSupport"]),
        // Drives the built ckpt-tool binary (exit codes, stdout/stderr, JSON).
        .testTarget(name: "CkptToolTests", dependencies: ["Catalog", "Checkpoint", "CheckpointTools", "TestSupport"]),
    ]
)
