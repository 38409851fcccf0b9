// swift-tools-version:6.1
import PackageDescription

// The benchmark suite lives in its own package so that the benchmark dependency (and its malloc
// interposer) never reaches the collector's own build. Run it from this directory:
//     swift package --disable-sandbox benchmark
// See README.md.
let package = Package(
    name: "span-collector-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        // `name:` keeps the product references below independent of the checkout's folder name.
        .package(name: "span-collector", path: ".."),
        // Only MallocInterposer: on Linux with Swift 6.3 the default "RuntimeInterposer" trait
        // would pull in swift-runtime-interposer, which the package mirror does not carry.
        // (The package was renamed from package-benchmark; the old identifier still resolves but warns.)
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "MirrorBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "MirrorDecoding", package: "span-collector"),
                .product(name: "PcapFormat", package: "span-collector"),
                .product(name: "CollectorCore", package: "span-collector"),
            ],
            path: "MirrorBenchmarks",
            plugins: [
                .plugin(name: "BenchmarkPlugin", package: "benchmark")
            ]
        )
    ]
)
