import CaptureSystem
import Logging
import Prometheus
import Synchronization

/// The loopback HTTP endpoint of a running collector: `GET /metrics` (Prometheus text
/// exposition) and `GET /summary` (the JSON summary `span-collector stats` prints). One
/// request at a time on its own thread, with 2 s socket timeouts: a scraper cannot hold it.
public final class StatusServer: @unchecked Sendable {
    public let address: String
    private let listener: TCPListener
    private let exporter = MetricsExporter()
    private let summary: @Sendable () -> Summary
    private let service: @Sendable () -> ServiceCounters
    private let stopRequested = Atomic<Bool>(false)
    private var thread: OSThread?

    /// Called once, on the server's thread, the first time a connection could not be accepted
    /// for want of descriptors (the server then retries every 100 ms, never spins).
    private let onDescriptorShortage: @Sendable () -> Void

    public init(
        listenOn address: String, summary: @escaping @Sendable () -> Summary,
        service: @escaping @Sendable () -> ServiceCounters, onDescriptorShortage: @escaping @Sendable () -> Void = {}
    ) throws(SystemError) {
        self.address = address
        listener = try TCPListener(listenOn: address)
        self.summary = summary
        self.service = service
        self.onDescriptorShortage = onDescriptorShortage
        thread = try OSThread(name: "span-status") { [unowned self] in run() }
    }

    public func stop() {
        stopRequested.store(true, ordering: .relaxed)
        thread?.join()
        thread = nil
    }

    private func run() {
        while !stopRequested.load(ordering: .relaxed) {
            let shortagesBefore = listener.descriptorShortages
            guard let connection = listener.accept(timeoutMilliseconds: 200) else {
                if shortagesBefore == 0, listener.descriptorShortages > 0 { onDescriptorShortage() }
                continue
            }
            let request = connection.read(limit: 8192) { bytes in
                bytes.count >= 4 && bytes.suffix(4).elementsEqual([13, 10, 13, 10])
            }
            let line = String(decoding: request.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
            let parts = line.split(separator: " ")
            let path = parts.count >= 2 && parts[0] == "GET" ? parts[1].split(separator: "?").first.map(String.init) ?? "" : ""
            switch path {
            case "/metrics":
                respond(connection, status: "200 OK", type: "text/plain; version=0.0.4; charset=utf-8",
                    body: exporter.render(summary(), service()))
            case "/summary":
                respond(connection, status: "200 OK", type: "application/json", body: Array(summary().jsonText().utf8))
            case "/", "/health":
                respond(connection, status: "200 OK", type: "text/plain", body: Array("span-collector: /metrics /summary\n".utf8))
            default:
                respond(connection, status: parts.isEmpty ? "400 Bad Request" : "404 Not Found", type: "text/plain",
                    body: Array("not found\n".utf8))
            }
        }
    }

    private func respond(_ connection: TCPConnection, status: String, type: String, body: [UInt8]) {
        let head = "HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        connection.write(Array(head.utf8) + body)
    }
}

/// Service-level figures that are not part of the packet summary.
public struct ServiceCounters: Sendable {
    public var bufferMemoryBytes = 0
    public var finishedFileBytes = 0
    public var filesRemovedForSpace = 0
    public var postRotateSucceeded = 0
    public var postRotateFailed = 0
    public var postRotateDropped = 0
    public var postRotateAbandoned = 0

    public init() {}
}

/// Turns summaries into Prometheus series (swift-prometheus registry). Counters only go up:
/// each scrape adds the difference to the previous one. `lost` is net (late arrivals take it
/// back), so it is a gauge.
final class MetricsExporter: @unchecked Sendable {
    private let registry = PrometheusCollectorRegistry()
    private let lock = Mutex<State>(State())

    private struct State {
        var counters: [String: (counter: Counter, last: Int64)] = [:]
        var gauges: [String: Gauge] = [:]
    }

    func render(_ summary: Summary, _ service: ServiceCounters) -> [UInt8] {
        lock.withLock { state in
            func count(_ name: String, _ labels: [(String, String)], _ help: String, _ value: Int64) {
                let key = name + labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
                let entry = state.counters[key] ?? (registry.makeCounter(name: name, labels: labels, help: help), 0)
                if value > entry.last { entry.counter.increment(by: value - entry.last) }
                state.counters[key] = (entry.counter, max(value, entry.last))
            }
            func gauge(_ name: String, _ labels: [(String, String)], _ help: String, _ value: Double) {
                let key = name + labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
                let gauge = state.gauges[key] ?? registry.makeGauge(name: name, labels: labels, help: help)
                state.gauges[key] = gauge
                gauge.set(value)
            }
            count("span_collector_packets_received_total", [], "Frames seen, including those the kernel dropped.", summary.packetsReceived)
            count("span_collector_packets_written_total", [], "Frames written to session files.", summary.packetsWritten)
            for (reason, value) in [("kernel", summary.dropped.kernel), ("queue", summary.dropped.queue), ("write", summary.dropped.write)] {
                count("span_collector_packets_dropped_total", [("reason", reason)], "Frames we failed to keep, by reason.", value)
            }
            for (reason, value) in summary.discardReasons.sorted(by: { $0.key < $1.key }) {
                let bucket = String(reason.split(separator: ".").first ?? "")
                count("span_collector_packets_discarded_total", [("bucket", bucket), ("reason", reason)],
                    "Frames we chose not to keep, by reason.", value)
            }
            for (anomaly, value) in summary.anomalies.sorted(by: { $0.key < $1.key }) {
                count("span_collector_anomalies_total", [("anomaly", anomaly)], "Frames written despite an anomaly.", value)
            }
            for session in summary.sessions {
                let labels = [("session", session.name), ("encapsulation", session.encapsulation), ("exporter", session.exporter ?? "")]
                let name = [("session", session.name)]
                count("span_collector_session_packets_total", labels, "Frames written per session.", session.packets)
                count("span_collector_session_bytes_total", name, "Captured bytes written per session.", session.bytes)
                gauge("span_collector_session_lost_packets", name, "Net frames lost upstream (GRE sequence gaps).", Double(session.lost))
                count("span_collector_session_out_of_order_total", name, "Late frames per session.", session.outOfOrder)
                count("span_collector_session_duplicates_total", name, "Repeated GRE sequence numbers per session.", session.duplicates)
                count("span_collector_session_restarts_total", name, "Exporter restarts (sequence jumps) per session.", session.restarts)
                count("span_collector_session_truncated_total", name, "Truncated frames per session.", session.truncated)
                count("span_collector_session_files_total", name, "Files finished per session.", session.files)
                count("span_collector_session_dropped_total", name + [("reason", "queue")], "Frames a session lost in the collector.", session.droppedQueue)
                count("span_collector_session_dropped_total", name + [("reason", "write")], "Frames a session lost in the collector.", session.droppedWrite)
            }
            gauge("span_collector_sessions", [], "Sessions seen.", Double(summary.sessions.count))
            let reassembly = summary.reassembly
            count("span_collector_fragments_total", [], "Outer IP fragments received.", reassembly.fragments)
            count("span_collector_reassembled_datagrams_total", [], "Datagrams rebuilt from fragments.", reassembly.datagrams)
            count("span_collector_fragment_datagrams_given_up_total", [("reason", "incomplete")], "Datagrams given up.", reassembly.incompleteDatagrams)
            count("span_collector_fragment_datagrams_given_up_total", [("reason", "overlap")], "Datagrams given up.", reassembly.overlappingDatagrams)
            count("span_collector_fragments_limited_total", [], "Fragments refused by the reassembly memory caps.", reassembly.limitedFragments)
            gauge("span_collector_fragments_pending", [], "Fragments held for reassembly.", Double(reassembly.pendingFragments))
            gauge("span_collector_buffer_memory_bytes", [], "Batch buffer memory allocated.", Double(service.bufferMemoryBytes))
            gauge("span_collector_finished_file_bytes", [], "Bytes of finished files under disk retention.", Double(service.finishedFileBytes))
            count("span_collector_retention_removed_files_total", [], "Files removed for --max-disk-usage/--min-free-space.", Int64(service.filesRemovedForSpace))
            for (result, value) in [("ok", service.postRotateSucceeded), ("failed", service.postRotateFailed), ("dropped", service.postRotateDropped), ("abandoned", service.postRotateAbandoned)] {
                count("span_collector_post_rotate_commands_total", [("result", result)], "Post-rotate commands by outcome.", Int64(value))
            }
            return registry.emitToBuffer()
        }
    }
}
