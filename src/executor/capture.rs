//! Bounded output capture: keep the last N bytes of a stream, however much is written.

use std::io::Read;

/// Keeps the tail of a byte stream in at most about twice `limit` bytes of memory.
#[derive(Debug)]
pub struct TailBuffer {
    limit: usize,
    buffer: Vec<u8>,
    total: u64,
}

impl TailBuffer {
    /// A buffer keeping the last `limit` bytes.
    pub fn new(limit: usize) -> TailBuffer {
        TailBuffer {
            limit,
            buffer: Vec::new(),
            total: 0,
        }
    }

    /// Appends bytes, dropping the oldest beyond the limit.
    pub fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        if self.limit == 0 {
            return;
        }
        if bytes.len() >= self.limit {
            self.buffer.clear();
            self.buffer.extend_from_slice(&bytes[bytes.len() - self.limit..]);
            return;
        }
        self.buffer.extend_from_slice(bytes);
        // Compact only once the buffer holds twice the limit: amortised O(1) per byte.
        if self.buffer.len() >= 2 * self.limit {
            let excess = self.buffer.len() - self.limit;
            self.buffer.drain(..excess);
        }
    }

    /// Reads `reader` to its end into the buffer.
    pub fn read_all(&mut self, mut reader: impl Read) {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => self.push(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    }

    /// Bytes written in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The kept tail as text, with a marker line when the start was dropped.
    pub fn into_text(self) -> String {
        let kept = if self.buffer.len() > self.limit {
            &self.buffer[self.buffer.len() - self.limit..]
        } else {
            &self.buffer[..]
        };
        let text = String::from_utf8_lossy(kept);
        let dropped = self.total - kept.len() as u64;
        if dropped > 0 {
            format!(
                "[queuectl: output truncated, first {dropped} of {} bytes dropped]\n{text}",
                self.total
            )
        } else {
            text.into_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_everything_under_the_limit() {
        let mut t = TailBuffer::new(10);
        t.push(b"hello");
        assert_eq!(t.into_text(), "hello");
    }

    #[test]
    fn keeps_the_tail_and_marks_the_cut() {
        let mut t = TailBuffer::new(4);
        for _ in 0..100 {
            t.push(b"abc");
        }
        t.push(b"XYZ");
        assert_eq!(t.total(), 303);
        assert_eq!(
            t.into_text(),
            "[queuectl: output truncated, first 299 of 303 bytes dropped]\ncXYZ"
        );
    }

    #[test]
    fn memory_stays_bounded() {
        let mut t = TailBuffer::new(1024);
        let chunk = vec![b'x'; 700];
        for _ in 0..10_000 {
            t.push(&chunk);
            assert!(t.buffer.len() < 2 * 1024 + 700);
        }
    }

    #[test]
    fn zero_limit_keeps_nothing() {
        let mut t = TailBuffer::new(0);
        t.push(b"abc");
        assert_eq!(
            t.into_text(),
            "[queuectl: output truncated, first 3 of 3 bytes dropped]\n"
        );
    }
}
