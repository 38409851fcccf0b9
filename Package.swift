// swift-tools-version:6.1
import PackageDescription

// Dependencies point one way: the executable → CollectorCore → PcapStorage/CaptureSystem →
// PcapFormat/MirrorDecoding (pure, no libc). See docs/ARCHITECTURE.md.
let upcoming: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

// The per-packet modules mutate class state on every frame; the dynamic exclusivity checks
// Swift adds for that cost ~2% of replay time with nothing to find in single-owner code.
let hotPath: [SwiftSetting] = upcoming + [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "span-collector",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "span-collector", targets: ["span-collector"]),
        .library(name: "CollectorCore", targets: ["CollectorCore"]),
        .library(name: "MirrorDecoding", targets: ["MirrorDecoding"]),
        .library(name: "PcapFormat", targets: ["PcapFormat"]),
        .library(name: "PcapStorage", targets: ["PcapStorage"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CPcap",
            pkgConfig: "libpcap",
            providers: [.apt(["libpcap-dev"])]
        ),
        .target(name: "CLinuxPacket"),
        // Capture-file inputs: gzip and zstd decompression, the SIGBUS guard of mapped files.
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .target(name: "CFileInput", dependencies: ["CZlib", "CZstd"]),
        .target(name: "MirrorDecoding", swiftSettings: hotPath),
        .target(name: "PcapFormat", swiftSettings: upcoming),
        .target(
            name: "CaptureSystem",
            dependencies: ["CLinuxPacket", "CPcap", "CFileInput"],
            swiftSettings: upcoming
        ),
        .target(
            name: "PcapStorage",
            dependencies: ["PcapFormat", "CaptureSystem"],
            swiftSettings: hotPath
        ),
        .target(
            name: "CollectorCore",
            dependencies: [
                "MirrorDecoding", "PcapFormat", "CaptureSystem", "PcapStorage",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: hotPath
        ),
        .executableTarget(
            name: "span-collector",
            dependencies: [
                "CollectorCore", "CaptureSystem", "MirrorDecoding", "PcapFormat",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: upcoming
        ),
        .testTarget(name: "MirrorDecodingTests", dependencies: ["MirrorDecoding"], swiftSettings: upcoming),
        .testTarget(name: "PcapFormatTests", dependencies: ["PcapFormat"], swiftSettings: upcoming),
        .testTarget(
            name: "CollectorCoreTests",
            dependencies: ["CollectorCore", "MirrorDecoding", "PcapFormat", "PcapStorage", "CaptureSystem"],
            swiftSettings: upcoming
        ),
    ]
)
