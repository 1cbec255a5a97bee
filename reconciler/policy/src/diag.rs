//! Diagnostics: every problem netward finds in its input, with the place it was found.
//!
//! Errors and warnings are data, collected and rendered once at the edge
//! (`file:line:col: severity: message`), so `validate` can report all of them.

use std::fmt;
use std::sync::Arc;

/// A place in an input file. Lines and columns start at 1; 0 means unknown.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pos {
    /// The input's name: a path as given, or a path in a Git tree.
    pub file: Arc<str>,
    /// The line; 0 for a problem with the whole file.
    pub line: u32,
    /// The column; 0 when only the line is known.
    pub col: u32,
}

impl Pos {
    /// A position in `file` at `line`:`col`.
    pub fn new(file: &Arc<str>, line: u32, col: u32) -> Self {
        Pos { file: file.clone(), line, col }
    }

    /// A position with no known place inside `file` (a whole-file problem).
    pub fn file_only(file: &str) -> Self {
        Pos { file: Arc::from(file), line: 0, col: 0 }
    }

    /// The same line, `n` columns to the right.
    pub fn shifted(&self, n: usize) -> Self {
        Pos { file: self.file.clone(), line: self.line, col: self.col + n as u32 }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.col) {
            (0, _) => write!(f, "{}", self.file),
            (l, 0) => write!(f, "{}:{}", self.file, l),
            (l, c) => write!(f, "{}:{}:{}", self.file, l, c),
        }
    }
}

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The input is wrong and cannot be used as written.
    Error,
    /// The input is valid but likely not what was meant.
    Warning,
}

/// One finding about the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Whether it is an error or a warning.
    pub severity: Severity,
    /// Where in the input it was found.
    pub pos: Pos,
    /// What is wrong, for a person to read.
    pub message: String,
}

impl Diagnostic {
    /// A finding that makes the input unusable.
    pub fn error(pos: Pos, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Error, pos, message: message.into() }
    }

    /// A finding about valid input that is likely a mistake.
    pub fn warning(pos: Pos, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Warning, pos, message: message.into() }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}: {}: {}", self.pos, sev, self.message)
    }
}

impl std::error::Error for Diagnostic {}

/// Sort diagnostics by place, then severity, so output is stable.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| (&a.pos, a.severity, &a.message).cmp(&(&b.pos, b.severity, &b.message)));
}

/// The result of decoding one object: the value or the error that stopped it.
pub type DResult<T> = Result<T, Diagnostic>;
