import CaptureSystem

/// Errors an operator sees: each says what failed and where. Packets never produce errors;
/// they produce counters.
public enum CollectorError: Error, CustomStringConvertible, Sendable {
    case invalidConfiguration([ConfigurationProblem])
    case input(path: String, reason: String)
    case output(SystemError)
    case capture(SystemError)
    /// Some replay inputs could not be read; the others were processed into `summary`.
    indirect case inputsFailed([CollectorError], Summary)

    public var description: String {
        switch self {
        case .invalidConfiguration(let problems):
            return "invalid configuration:\n" + problems.map { "  \($0)" }.joined(separator: "\n")
        case .input(let path, let reason):
            return "cannot read \(path): \(reason)"
        case .output(let error):
            return "cannot write output: \(error)"
        case .capture(let error):
            return "cannot capture: \(error)"
        case .inputsFailed(let errors, _):
            return errors.map(\.description).joined(separator: "\n")
        }
    }
}
