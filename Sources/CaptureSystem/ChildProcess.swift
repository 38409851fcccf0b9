#if canImport(Glibc)
import Glibc
#endif

/// Child processes for the post-rotate command: started with `posix_spawn` (no fork of a
/// multi-threaded process), reaped without blocking.
public enum ChildProcess {
    /// Starts `/bin/sh -c COMMAND sh ARGUMENT`: the command sees the argument as "$1" (and,
    /// when it does not use "$1", gets it appended, like tcpdump -z). Returns the pid.
    public static func spawnShell(command: String, argument: String) throws(SystemError) -> pid_t {
        let script = command.contains("$1") ? command : command + " \"$1\""
        let arguments = ["/bin/sh", "-c", script, "sh", argument]
        var pid: pid_t = 0
        var cArguments = arguments.map { strdup($0) } + [nil]
        defer { for pointer in cArguments { free(pointer) } }
        // The collector blocks SIGINT/SIGTERM/SIGHUP in every thread; a child must not inherit
        // that, or `kill`, `timeout` and systemd could not stop it.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        // A process group of its own (its pid), so that everything the command starts can be
        // killed together when the collector stops waiting for it.
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP))
        let status = posix_spawn(&pid, "/bin/sh", nil, &attributes, &cArguments, environ)
        guard status == 0 else { throw SystemError(call: "posix_spawn", subject: command, errno: status) }
        return pid
    }

    /// Kills the process group a child leads (the child and everything it started) with
    /// SIGKILL and reaps the child. The corresponding C functions are `kill(2)` with a negative
    /// pid and `waitpid(2)`.
    public static func killGroup(of pid: pid_t) {
        _ = kill(-pid, SIGKILL)
        _ = kill(pid, SIGKILL)  // in case it left its group (setsid): the wait below must end
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }

    /// How a finished child ended.
    public enum Outcome: Sendable, Equatable {
        case exited(Int32)
        case signaled(Int32)

        public var succeeded: Bool { self == .exited(0) }
    }

    /// A child that has finished, if any, without waiting. The corresponding C function is
    /// `waitpid(2)` with WNOHANG.
    public static func reapFinished(_ pid: pid_t) -> Outcome? {
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        guard result == pid else { return nil }
        if status & 0x7F == 0 { return .exited((status >> 8) & 0xFF) }
        return .signaled(status & 0x7F)
    }
}
