//! A small Server-Sent Events parser that is fed bytes as they arrive.
//!
//! Written by hand (rather than pulling in a crate) because we need exactly one thing: the `data` of each event,
//! from chunks that the network may split anywhere — inside a line, inside a `\r\n`, or inside a multi-byte
//! UTF-8 character. Bytes are buffered until a full line is there, and only whole lines are decoded.

/// Incremental SSE parser: [`SseParser::feed`] bytes, get the `data` of every event completed by them.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the line not yet terminated.
    line: Vec<u8>,
    /// `data` lines of the event being read.
    data: Vec<String>,
    /// The previous chunk ended in `\r`: a `\n` at the start of the next chunk belongs to it.
    after_cr: bool,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes; returns the data of each event they complete, in order.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut events = Vec::new();
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' => self.end_line(&mut events),
                b'\r' => {
                    self.after_cr = true;
                    self.end_line(&mut events);
                }
                _ => self.line.push(b),
            }
        }
        events
    }

    /// The stream ended: an event whose blank line never came is still delivered (some servers omit the last one).
    pub fn finish(&mut self) -> Option<String> {
        let mut events = Vec::new();
        if !self.line.is_empty() {
            self.end_line(&mut events);
        }
        self.end_line(&mut events);
        events.pop()
    }

    fn end_line(&mut self, events: &mut Vec<String>) {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            if !self.data.is_empty() {
                events.push(std::mem::take(&mut self.data).join("\n"));
            }
            return;
        }
        let line = String::from_utf8_lossy(&line);
        // Comments (`: keep-alive`) and other fields (`event:`, `id:`, `retry:`) carry nothing we use.
        let (field, value) = match line.find(':') {
            Some(0) => return,
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (&line[..], ""),
        };
        if field == "data" {
            self.data.push(value.strip_prefix(' ').unwrap_or(value).to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere_come_out_whole() {
        let text = "data: {\"a\":\"h\u{e9}llo\"}\r\n\r\n: ping\n\ndata: x\ndata: y\n\ndata: [DONE]\n\n";
        let bytes = text.as_bytes();
        let whole = SseParser::new().feed(bytes);
        assert_eq!(whole, vec!["{\"a\":\"h\u{e9}llo\"}", "x\ny", "[DONE]"]);
        // Every split position, including inside "\r\n" and inside the two-byte 'é'.
        for cut in 0..bytes.len() {
            let mut p = SseParser::new();
            let mut out = p.feed(&bytes[..cut]);
            out.extend(p.feed(&bytes[cut..]));
            assert_eq!(out, whole, "cut at {cut}");
        }
        // One byte at a time.
        let mut p = SseParser::new();
        let out: Vec<String> = bytes.iter().flat_map(|b| p.feed(std::slice::from_ref(b))).collect();
        assert_eq!(out, whole);
    }

    #[test]
    fn a_last_event_without_blank_line_is_kept() {
        let mut p = SseParser::new();
        assert!(p.feed(b"data: tail").is_empty());
        assert_eq!(p.finish().as_deref(), Some("tail"));
    }
}
