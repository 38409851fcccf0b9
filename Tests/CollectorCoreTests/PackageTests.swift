import Foundation
import PcapFormat
import Testing

/// dist/span-collector_VERSION_ARCH.deb for this source's version, if `make deb` built it.
enum BuiltPackage {
    static var path: String? {
        let dist = TestSupport.packageRoot.appendingPathComponent("dist").path
        let prefix = "span-collector_\(SpanCollectorVersion.string)_"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dist)) ?? []
        return names.first { $0.hasPrefix(prefix) && $0.hasSuffix(".deb") }.map { dist + "/" + $0 }
    }
}

/// The Debian package `make deb` builds (dist/span-collector_VERSION_ARCH.deb; `make test` builds
/// it before the suite), unpacked with dpkg-deb and checked as an operator's host would see it:
/// the file list, the conffile, a binary that needs no Swift toolchain, the manual, the
/// completions and the unit. Without the package the suite reports these tests as skipped,
/// except in CI (CI set), where a missing package fails.
@Suite(.enabled(if: BuiltPackage.path != nil || ProcessInfo.processInfo.environment["CI"] != nil, "no dist/*.deb: run make deb"))
struct PackageTests {
    static var package: String? { BuiltPackage.path }

    /// The package unpacked into a fresh directory (removed by the caller): `root` holds the
    /// files, `control` the control archive.
    struct Unpacked {
        let directory: String
        var root: String { directory + "/root" }
        var control: String { directory + "/control" }
        var binary: String { root + "/usr/bin/span-collector" }

        init() throws {
            let package = try #require(PackageTests.package, "no dist/span-collector_\(SpanCollectorVersion.string)_*.deb: run make deb")
            directory = try TestSupport.makeTemporaryDirectory("deb")
            for (option, target) in [("-x", root), ("-e", control)] {
                let result = try TestSupport.run(["dpkg-deb", option, package, target], timeout: 120)
                try #require(result.status == 0, "dpkg-deb \(option): \(result.standardError)")
            }
        }

        func text(_ path: String) throws -> String { try String(contentsOfFile: path, encoding: .utf8) }

        /// `field` of the control file.
        func controlField(_ field: String) throws -> String? {
            try text(control + "/control").split(separator: "\n")
                .first { $0.hasPrefix(field + ": ") }.map { String($0.dropFirst(field.count + 2)) }
        }
    }

    /// A child environment without the toolchain: no /opt/swift on PATH, no library path.
    static let baseSystemEnvironment = ["-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"]

    @Test func thePackageHoldsTheExpectedFiles() throws {
        let package = try #require(Self.package)
        let listing = try TestSupport.run(["dpkg-deb", "--contents", package], timeout: 60)
        try #require(listing.status == 0, "\(listing.standardError)")
        // "-rw-r--r-- root/root 9456 2026-12-08 00:55 ./etc/span-collector/span-collector.toml"
        var files: [String: (mode: String, owner: String)] = [:]
        for line in listing.standardOutput.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 6, fields[0].hasPrefix("-") else { continue }
            files[String(fields[5].dropFirst())] = (String(fields[0]), String(fields[1]))
        }
        let manual = ["", ".run", ".replay", ".check-config", ".stats"].map { "/usr/share/man/man1/span-collector\($0).1.gz" }
        let expected = Set([
            "/usr/bin/span-collector",
            "/etc/span-collector/span-collector.toml",
            "/usr/lib/systemd/system/span-collector.service",
            "/usr/lib/sysusers.d/span-collector.conf",
            "/usr/share/bash-completion/completions/span-collector",
            "/usr/share/zsh/vendor-completions/_span-collector",
            "/usr/share/fish/vendor_completions.d/span-collector.fish",
            "/usr/share/doc/span-collector/copyright",
            "/usr/share/doc/span-collector/changelog.gz",
            "/usr/share/doc/span-collector/README.md",
            "/usr/share/doc/span-collector/OPERATIONS.md",
            "/usr/share/doc/span-collector/COUNTERS.md",
            "/usr/share/doc/span-collector/FORMATS.md",
        ] + manual)
        // Every file is expected; man pages of further subcommands may come and go.
        let unexpected = Set(files.keys).subtracting(expected).filter { !$0.hasPrefix("/usr/share/man/man1/span-collector.") }
        #expect(unexpected.isEmpty, "unexpected files: \(unexpected.sorted())")
        #expect(expected.subtracting(files.keys).isEmpty, "missing: \(expected.subtracting(files.keys).sorted())")
        for (path, file) in files {
            #expect(file.owner == "root/root", "\(path) owned by \(file.owner)")
            #expect(file.mode == (path == "/usr/bin/span-collector" ? "-rwxr-xr-x" : "-rw-r--r--"), "\(path): \(file.mode)")
        }
    }

    @Test func theControlDataNamesTheVersionTheConffileAndTheDependencies() throws {
        let unpacked = try Unpacked()
        defer { TestSupport.removeDirectory(unpacked.directory) }
        #expect(try unpacked.controlField("Package") == "span-collector")
        #expect(try unpacked.controlField("Version") == SpanCollectorVersion.string)
        #expect(try unpacked.text(unpacked.control + "/conffiles") == "/etc/span-collector/span-collector.toml\n")
        let shipped = try String(
            contentsOfFile: TestSupport.packageRoot.appendingPathComponent("config/span-collector.toml").path, encoding: .utf8)
        #expect(try unpacked.text(unpacked.root + "/etc/span-collector/span-collector.toml") == shipped)
        // libpcap is a shared library of the base system, so a package dependency.
        let depends = try #require(try unpacked.controlField("Depends"))
        #expect(depends.contains("libpcap0.8"), "Depends: \(depends)")
        #expect(depends.contains("libc6"), "Depends: \(depends)")
        for script in ["postinst", "prerm", "postrm"] {
            let check = try TestSupport.run(["sh", "-n", unpacked.control + "/" + script])
            #expect(check.status == 0, "\(script): \(check.standardError)")
        }
        let sysusers = try unpacked.text(unpacked.root + "/usr/lib/sysusers.d/span-collector.conf")
        #expect(sysusers.contains("\nu span-collector - "), "\(sysusers)")
        let changelog = try TestSupport.run(["gzip", "-dc", unpacked.root + "/usr/share/doc/span-collector/changelog.gz"])
        #expect(changelog.standardOutput.hasPrefix("span-collector (\(SpanCollectorVersion.string)) "))
    }

    /// The binary runs where no Swift toolchain is: ldd finds only the base system's libraries
    /// (libpcap among them), nothing from /opt/swift, and no RUNPATH points there.
    @Test func theBinaryNeedsOnlyTheBaseSystemsLibraries() throws {
        let unpacked = try Unpacked()
        defer { TestSupport.removeDirectory(unpacked.directory) }
        let ldd = try TestSupport.run(Self.baseSystemEnvironment + ["ldd", unpacked.binary])
        try #require(ldd.status == 0, "\(ldd.standardError)")
        var libraries: [String] = []
        for line in ldd.standardOutput.split(separator: "\n").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            let name = String(line.split(separator: " ").first ?? "")
            if name.hasPrefix("linux-vdso") { continue }
            libraries.append(name)
            #expect(!line.contains("not found"), "\(line)")
            let resolved = line.components(separatedBy: "=> ").last?.split(separator: " ").first.map(String.init) ?? name
            #expect(resolved.hasPrefix("/lib") || resolved.hasPrefix("/usr/lib"), "\(line)")
        }
        #expect(libraries.contains("libpcap.so.0.8"), "\(libraries)")
        #expect(libraries.contains("libc.so.6"), "\(libraries)")
        for runtime in ["libswift", "libFoundation", "libicu", "libdispatch", "libBlocksRuntime"] {
            #expect(!libraries.contains { $0.hasPrefix(runtime) }, "\(runtime) in \(libraries)")
        }
        let dynamic = try TestSupport.run(["readelf", "--dynamic", unpacked.binary])
        try #require(dynamic.status == 0, "\(dynamic.standardError)")
        #expect(!dynamic.standardOutput.contains("/opt/swift"), "RUNPATH into the toolchain")
    }

    @Test func theBinaryPrintsThePackageVersionAndShipsItsManualAndCompletions() throws {
        let unpacked = try Unpacked()
        defer { TestSupport.removeDirectory(unpacked.directory) }
        let version = try TestSupport.run(Self.baseSystemEnvironment + [unpacked.binary, "--version"])
        #expect(version.status == 0, "\(version.standardError)")
        #expect(version.standardOutput == SpanCollectorVersion.string + "\n")
        #expect(try unpacked.controlField("Version") == SpanCollectorVersion.string)

        let manual = unpacked.root + "/usr/share/man/man1/"
        let page = try TestSupport.run(["gzip", "-dc", manual + "span-collector.1.gz"])
        #expect(page.status == 0)
        #expect(page.standardOutput.contains("\n.Dt SPAN-COLLECTOR 1\n"), "\(page.standardOutput.prefix(300))")
        for subcommand in ["run", "replay", "check-config", "stats"] {
            #expect(page.standardOutput.contains(subcommand), "the root page does not name \(subcommand)")
        }
        let run = try TestSupport.run(["gzip", "-dc", manual + "span-collector.run.1.gz"])
        #expect(run.standardOutput.contains("--config"), "span-collector.run.1 lacks --config")

        let completions = [
            "/usr/share/bash-completion/completions/span-collector": "check-config",
            "/usr/share/zsh/vendor-completions/_span-collector": "#compdef span-collector",
            "/usr/share/fish/vendor_completions.d/span-collector.fish": "complete -c 'span-collector'",
        ]
        for (path, marker) in completions {
            let text = try unpacked.text(unpacked.root + path)
            #expect(text.contains(marker), "\(path) lacks '\(marker)'")
            #expect(text.contains("replay"), "\(path) does not complete the replay subcommand")
        }
        let bash = try TestSupport.run(["bash", "-n", unpacked.root + "/usr/share/bash-completion/completions/span-collector"])
        #expect(bash.status == 0, "bash rejects the completion script: \(bash.standardError)")
    }

    /// Debian's own checker finds no error (its warnings are listed in docs/OPERATIONS.md).
    @Test func lintianReportsNoError() throws {
        let package = try #require(Self.package)
        let lintian = try TestSupport.run(["lintian", "--fail-on", "error", package], timeout: 600)
        let errors = lintian.standardOutput.split(separator: "\n").filter { $0.hasPrefix("E: ") }
        #expect(lintian.status == 0 && errors.isEmpty, "lintian: \(lintian.standardOutput) \(lintian.standardError)")
    }

    /// The unit as packaged: it names the packaged paths, verifies, and rates at most 2.0.
    @Test func thePackagedUnitVerifiesAndIsRatedAtMostTwo() throws {
        try #require(SystemdTests.systemdAnalyzeAvailable, "systemd-analyze missing: apt-get install systemd (make deps)")
        let unpacked = try Unpacked()
        defer { TestSupport.removeDirectory(unpacked.directory) }
        let unit = try unpacked.text(unpacked.root + "/usr/lib/systemd/system/span-collector.service")
        #expect(unit.contains("\nExecStart=/usr/bin/span-collector run --config /etc/span-collector/span-collector.toml\n"))
        #expect(unit.contains("\nExecStartPre=/usr/bin/span-collector check-config /etc/span-collector/span-collector.toml\n"))
        let runnable = try SystemdTests.unitForVerification(unit, binary: unpacked.binary)
        let verification = try SystemdTests.verify(runnable)
        #expect(verification.passed, "systemd-analyze verify: \(verification.diagnostics)")
        let rating = try SystemdTests.exposure(of: runnable)
        #expect(rating.score <= SystemdTests.maximumExposure, "exposure \(rating.score):\n\(rating.table)")
    }

    /// The packaged binary, run from the unpacked tree with neither the toolchain on PATH nor
    /// a library path, replays a fixture into the same records the fixture expects.
    @Test func thePackagedBinaryReplaysAFixtureWithoutTheToolchain() throws {
        let unpacked = try Unpacked()
        defer { TestSupport.removeDirectory(unpacked.directory) }
        let fixture = "erspan2_3_same_session"
        let input = TestSupport.fixtures.appendingPathComponent(fixture + ".pcap").path
        let output = unpacked.directory + "/output"
        let replay = try TestSupport.run(Self.baseSystemEnvironment + [unpacked.binary, "replay", input, "--output", output])
        try #require(replay.status == 0, "replay: \(replay.standardError)")

        let expectedFiles = try FileManager.default.contentsOfDirectory(atPath: TestSupport.fixtures.path)
            .filter { $0.hasPrefix(fixture + ".") && $0.hasSuffix(".expected.pcap") }.sorted()
        try #require(!expectedFiles.isEmpty)
        for name in expectedFiles {
            let session = String(name.dropFirst(fixture.count + 1).dropLast(".expected.pcap".count))
            let files = TestSupport.captureFiles(in: output + "/" + session)
            try #require(files.count == 1, "\(session): \(files)")
            let written = try TestSupport.readPcap(files[0])
            let expected = try TestSupport.readPcap(TestSupport.fixtures.appendingPathComponent(name).path)
            #expect(written.linkType == expected.linkType, "\(session)")
            #expect(written.records == expected.records, "\(session): records differ from \(name)")
            #expect(try TestSupport.capinfosPacketCounts(files).values.first == expected.records.count)
        }
        #expect(TestSupport.captureFiles(in: output).count == expectedFiles.count)
    }
}
