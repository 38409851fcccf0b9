import CaptureSystem

/// Errors an operator sees: each says what failed and where. Packets never produce errors;
/// they produce counters.
public enum CollectorError: Error, CustomStringConvertible, Sendable {
    case invalidConfiguration([ConfigurationProblem])
    case input(path: String, reason: String)
    case output(SystemError)

    public var description: String {
        switch self {
        case .invalidConfiguration(let problems):
            return "invalid configuration:\n" + problems.map { "  \($0)" }.joined(separator: "\n")
        case .input(let path, let reason):
            return "cannot read \(path): \(reason)"
        case .output(let error):
            return "cannot write output: \(error)"
        }
    }
}
