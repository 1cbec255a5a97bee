//! What can go wrong in a command, as the user sees it: each kind has its
//! exit code, and `main` renders it once.

use netward::diag::Diagnostic;

/// Failures the user sees, each with its exit code.
pub(crate) enum Failure {
    /// Bad input: every diagnostic, exit 1.
    Input(Vec<Diagnostic>),
    /// Input given on the command line is wrong (a selector): exit 1.
    Invalid(String),
    /// A usage problem found after parsing flags (unknown endpoint, bad port): exit 2.
    Usage(String),
    /// The machine or a server failed (a file, Git, the Kubernetes API): exit 2.
    Io(String),
    /// Diagnostics already printed; exit with this code.
    Exit(u8),
}
