//! [`Out`]: standard output for the commands, a line (or a JSON line) at a time.

use std::io::Write;

use crate::{Failure, fail};

/// Standard output, where a failed write (a full device) is an error naming it.
pub(crate) struct Out(pub(crate) std::io::BufWriter<std::io::StdoutLock<'static>>);

impl Out {
    pub(crate) fn new() -> Self {
        Out(std::io::BufWriter::new(std::io::stdout().lock()))
    }

    pub(crate) fn line(&mut self, text: std::fmt::Arguments<'_>) -> Result<(), Failure> {
        writeln!(self.0, "{text}").map_err(stdout_error)
    }

    /// `value` as one line of JSON, serialised straight into the output.
    pub(crate) fn json(&mut self, value: &impl serde::Serialize) -> Result<(), Failure> {
        // A failed write stays the `io::Error` it was (a closed pipe is then a normal end).
        serde_json::to_writer(&mut self.0, value).map_err(|e| stdout_error(e.into()))?;
        self.0.write_all(b"\n").map_err(stdout_error)
    }

    pub(crate) fn finish(mut self) -> Result<(), Failure> {
        self.0.flush().map_err(stdout_error)
    }
}

pub(crate) fn stdout_error(e: std::io::Error) -> Failure {
    fail(1, anyhow::Error::new(e).context("writing to standard output"))
}
