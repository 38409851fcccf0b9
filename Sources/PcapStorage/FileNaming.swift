/// File names: `<session>-<YYYYMMDDTHHMMSS>Z-<NNNNNN>.<ext>`, the time being the UTC time of
/// the file's first record and NNNNNN a per-session counter, so names sort in write order
/// within a second and never collide. The file being written carries an extra `.part`.
public enum FileNaming {
    public static let partSuffix = ".part"

    public static func fileName(session: String, firstTimestampNanoseconds: UInt64, sequence: Int, fileExtension: String) -> String {
        let sequenceText = String(sequence)
        let padded = String(repeating: "0", count: max(0, 6 - sequenceText.count)) + sequenceText
        return "\(session)-\(utcStamp(seconds: Int64(firstTimestampNanoseconds / 1_000_000_000)))-\(padded).\(fileExtension)"
    }

    /// `YYYYMMDDTHHMMSSZ` for seconds since the Unix epoch (proleptic Gregorian, UTC).
    public static func utcStamp(seconds: Int64) -> String {
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        let (year, month, day) = civilDate(daysSinceEpoch: days)
        func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let yearText = String(year)
        let paddedYear = String(repeating: "0", count: max(0, 4 - yearText.count)) + yearText
        return "\(paddedYear)\(two(month))\(two(day))T\(two(secondOfDay / 3600))\(two(secondOfDay / 60 % 60))\(two(secondOfDay % 60))Z"
    }

    /// Howard Hinnant's days-to-civil algorithm.
    static func civilDate(daysSinceEpoch: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = daysSinceEpoch + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthPrime = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthPrime + 2) / 5 + 1
        let month = monthPrime < 10 ? monthPrime + 3 : monthPrime - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// The sequence number of one of our files for `session` (finished or `.part`), or nil
    /// when `name` is not ours. Retention and numbering only ever touch names that parse.
    public static func sequence(ofFileNamed name: String, session: String) -> (sequence: Int, isPart: Bool)? {
        var rest = Substring(name)
        let isPart = rest.hasSuffix(partSuffix)
        if isPart { rest = rest.dropLast(partSuffix.count) }
        guard rest.hasPrefix(session + "-") else { return nil }
        rest = rest.dropFirst(session.count + 1)
        // YYYYMMDDTHHMMSSZ-NNNNNN.ext
        guard rest.count > 24 else { return nil }
        let stamp = rest.prefix(16)
        guard stamp.dropFirst(8).first == "T", stamp.last == "Z",
            stamp.prefix(8).allSatisfy(\.isNumber), stamp.dropFirst(9).prefix(6).allSatisfy(\.isNumber)
        else { return nil }
        rest = rest.dropFirst(16)
        guard rest.first == "-" else { return nil }
        rest = rest.dropFirst()
        guard let dot = rest.firstIndex(of: ".") else { return nil }
        let digits = rest[..<dot]
        let fileExtension = rest[rest.index(after: dot)...]
        guard digits.count >= 6, digits.allSatisfy(\.isNumber), let sequence = Int(digits),
            fileExtension == "pcap" || fileExtension == "pcapng"
        else { return nil }
        return (sequence, isPart)
    }
}
