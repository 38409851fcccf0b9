/// The release version, written in this one place: `span-collector --version` prints it, every
/// pcapng section header names it, and `make deb` reads it from this file for the package version.
public enum SpanCollectorVersion {
    public static let string = "0.1.0"
    /// The pcapng shb_userappl option: the program and its version.
    public static let application = "span-collector \(string)"
}
