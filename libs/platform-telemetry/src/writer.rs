//! Log lines to stdout through a buffer flushed every [`FLUSH_EVERY`], instead of one
//! `write(2)` per line.
//!
//! Under load a service writes an access line per request; written one by one, the
//! system calls cost more than rendering the lines. Lines are appended whole under one
//! lock, so they never interleave; a background thread flushes what has gathered, and
//! [`crate::TelemetryGuard::shutdown`] flushes the rest before the process exits. What a
//! process killed with SIGKILL had not flushed (at most the last [`FLUSH_EVERY`]) is
//! lost, as with any buffered log writer.

use std::io::{BufWriter, Stdout, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait in the buffer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Buffer size: a few dozen access lines per system call under load.
const CAPACITY: usize = 32 * 1024;

/// The buffered stdout; clones share one buffer.
#[derive(Debug, Clone)]
pub struct BufferedStdout {
    buffer: Arc<Mutex<BufWriter<Stdout>>>,
}

impl BufferedStdout {
    /// The buffer, and the thread that flushes it while the process lives.
    pub fn start() -> Self {
        let writer = Self {
            buffer: Arc::new(Mutex::new(BufWriter::with_capacity(
                CAPACITY,
                std::io::stdout(),
            ))),
        };
        let flusher = writer.clone();
        // A plain thread rather than a task: it must flush even while the runtime is
        // busy or gone, and it never blocks a worker.
        let spawned = std::thread::Builder::new()
            .name("log-flush".to_owned())
            .spawn(move || {
                loop {
                    std::thread::sleep(FLUSH_EVERY);
                    flusher.flush();
                }
            });
        if spawned.is_err() {
            // No thread: write through, unbuffered.
            writer.flush();
        }
        writer
    }

    /// Writes out what the buffer holds.
    pub fn flush(&self) {
        let mut buffer = self.buffer.lock().unwrap_or_else(PoisonError::into_inner);
        // A log line that cannot be written has nowhere else to go.
        let _ = buffer.flush();
    }
}

/// One line's writer: appends under the lock.
#[derive(Debug)]
pub struct Line<'a>(&'a BufferedStdout);

impl Write for Line<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.write_all(bytes)?;
        Ok(bytes.len())
    }

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let mut buffer = self.0.buffer.lock().unwrap_or_else(PoisonError::into_inner);
        buffer.write_all(bytes)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BufferedStdout {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        Line(self)
    }
}
