import ArgumentParser
import CaptureSystem
import CollectorCore
import Foundation

extension SpanCollector {
    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the counters of a running collector.",
            discussion: """
                Reads GET /summary from the collector's status endpoint (--metrics-listen of \
                `run`, 127.0.0.1:9477 by default) and prints a table, or the JSON summary with \
                --json (the same schema as `run --json`).
                """
        )

        @Option(name: .long, help: ArgumentHelp("The collector's status endpoint.", valueName: "host:port"))
        var address: String = "127.0.0.1:9477"

        @Flag(name: .long, help: "Print the summary as one JSON document.")
        var json = false

        func run() throws {
            let summary: Summary
            do {
                summary = try Self.fetch(from: address)
            } catch {
                FileHandle.standardError.write(Data("span-collector stats: \(error)\n".utf8))
                throw ExitCode(1)
            }
            print(json ? summary.jsonText() : summary.table(), terminator: json ? "\n" : "")
        }

        struct Failure: Error, CustomStringConvertible {
            var description: String
        }

        static func fetch(from address: String) throws -> Summary {
            let connection: TCPConnection
            do {
                connection = try TCPConnection(connectingTo: address)
            } catch {
                throw Failure(description: "no collector answers at \(address) (\(error)); is it running with --metrics-listen \(address)?")
            }
            connection.write(Array("GET /summary HTTP/1.0\r\nHost: \(address)\r\n\r\n".utf8))
            let response = connection.read(limit: 256 << 20)
            guard let split = response.indices.first(where: { response[$0...].starts(with: [13, 10, 13, 10]) }) else {
                throw Failure(description: "\(address) sent no HTTP response")
            }
            let head = String(decoding: response[..<split], as: UTF8.self)
            guard head.hasPrefix("HTTP/1.1 200") || head.hasPrefix("HTTP/1.0 200") else {
                throw Failure(description: "\(address) answered: \(head.split(separator: "\r\n").first ?? "")")
            }
            do {
                return try JSONDecoder().decode(Summary.self, from: Data(response[(split + 4)...]))
            } catch {
                throw Failure(description: "\(address) sent a summary this version cannot read: \(error)")
            }
        }
    }
}
