import ArgumentParser
import CaptureSystem
import CollectorCore
import Foundation

extension SpanCollector {
    struct CheckConfig: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check-config",
            abstract: "Validate a configuration file and report every problem at once.",
            discussion: """
                Prints "PATH: OK" and exits 0 when the file is valid. Otherwise prints every \
                problem on standard error, one per line as "PATH:LINE: KEY: message" (without \
                LINE where it is not known), and exits 1. Checks what `run` would check of the \
                file on its own: syntax, unknown keys, types, sizes, prefixes, ranges, the capture \
                filter, and the named sessions; and, when the file sets `output`, that the output \
                directory can be created and written (a probe file is written there and removed; \
                directories made for the check are removed again). Warnings ("PATH:LINE: KEY: \
                warning: message" on standard error) do not change the exit status: a session \
                exporter with host bits set, a session that an earlier one shadows. A path that is \
                not a regular file, or a file larger than 1 MiB, is refused.
                """
        )

        @Argument(help: ArgumentHelp("The configuration file (default /etc/span-collector/span-collector.toml).", valueName: "path"))
        var path: String = ConfigurationFile.defaultPath

        func run() throws {
            let loaded: LoadedConfiguration
            do {
                loaded = try ConfigurationFile.load(path: path)
                FileHandle.standardError.write(Data(loaded.warningLines.map { $0 + "\n" }.joined().utf8))
            } catch {
                FileHandle.standardError.write(Data(error.lines.map { $0 + "\n" }.joined().utf8))
                throw ExitCode(1)
            }
            // As `run` does at start: the output directory can be made and written. What this
            // check creates it removes again: checking leaves no trace.
            if let output = loaded.outputDirectory {
                var missing: [String] = []
                var ancestor = output
                while !ancestor.isEmpty, ancestor != "/", FileSystem.linkStatus(ancestor) == nil {
                    missing.append(ancestor)
                    ancestor = String(ancestor[..<(ancestor.lastIndex(of: "/") ?? ancestor.startIndex)])
                }
                defer { for directory in missing { try? FileSystem.removeDirectory(directory) } }
                do {
                    try FileSystem.checkWritable(directory: output)
                } catch {
                    FileHandle.standardError.write(Data("\(path): output: cannot write \(output): \(error)\n".utf8))
                    throw ExitCode(1)
                }
            }
            print("\(path): OK")
        }
    }
}
