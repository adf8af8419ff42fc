//! HTTP/2 control-frame flood guard: follows the frame boundaries of a
//! client's HTTP/2 byte stream (as the connection's IO wrapper reads it)
//! and counts the frames that cost the server work but carry no request:
//! SETTINGS and PING (not acknowledgements), PRIORITY, RST_STREAM and frame
//! types h2 ignores. Over budget, the frame that broke it is replaced by a
//! PING on stream 1, which h2 answers as the protocol error it is: GOAWAY
//! `PROTOCOL_ERROR`, then the connection closes.
//!
//! h2 bounds the other floods itself (CONTINUATION chains, empty DATA
//! frames, resets of streams not yet accepted, resets it had to send); it
//! answers each SETTINGS or PING as it reads it, without a limit, so a
//! client that reads the answers can keep a connection busy forever
//! (CVE-2019-9512, CVE-2019-9515): this closes that gap.
//!
//! Invariants:
//! - Follows framing exactly (9-byte headers, payload lengths), buffering
//!   at most one frame header; never panics, never allocates.
//! - Cuts only at a frame boundary within the current read: the frame
//!   over budget when its header starts in this read, else the next one.
//!   From there the read ends with the 9 bytes of [`POISON`] (or nothing,
//!   when the read buffer has no room left: then h2 just sees the end of
//!   the stream), and the connection reads EOF next.
//! - The budget is counted by the caller (the connection's activity
//!   counter, which the listener's watchdog resets every period): this
//!   type keeps no clock.

/// The client connection preface (RFC 9113 §3.4).
const PREFACE_LEN: usize = 24;
/// Frame header length (RFC 9113 §4.1).
const HEADER_LEN: usize = 9;

const PRIORITY: u8 = 0x2;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const ACK: u8 = 0x1;
/// The last frame type RFC 9113 defines (CONTINUATION).
const LAST_KNOWN: u8 = 0x9;

/// A PING on stream 1 with an empty payload: a connection error for h2
/// (PING must be on stream 0), answered with GOAWAY `PROTOCOL_ERROR`.
pub const POISON: [u8; HEADER_LEN] = [0, 0, 0, PING, 0, 0, 0, 0, 1];

/// Where a client's HTTP/2 byte stream is, frame by frame.
#[derive(Debug)]
pub struct FrameScan {
    /// Preface bytes still to skip.
    preface: usize,
    /// The frame header being read, and how much of it has arrived.
    header: [u8; HEADER_LEN],
    have: usize,
    /// Payload bytes of the current frame still to skip.
    skip: usize,
    /// The budget was exceeded; the frame over budget is replaced when its
    /// header starts within the current read, else the next frame is.
    over: bool,
}

impl Default for FrameScan {
    fn default() -> Self {
        Self {
            preface: PREFACE_LEN,
            header: [0; HEADER_LEN],
            have: 0,
            skip: 0,
            over: false,
        }
    }
}

/// Whether a frame counts against the control-frame budget.
fn is_control(kind: u8, flags: u8) -> bool {
    match kind {
        SETTINGS | PING => flags & ACK == 0,
        PRIORITY | RST_STREAM => true,
        k => k > LAST_KNOWN,
    }
}

impl FrameScan {
    /// Follows `data`, the next bytes read. `spend` is called once per
    /// control frame and returns false when the budget is exhausted. Returns
    /// the offset in `data` of a frame header to replace with [`POISON`]
    /// (the bytes from there on must not reach h2), once over budget.
    pub fn feed(&mut self, data: &[u8], mut spend: impl FnMut() -> bool) -> Option<usize> {
        let mut at = 0;
        while at < data.len() {
            if self.preface > 0 {
                let n = self.preface.min(data.len() - at);
                self.preface -= n;
                at += n;
                continue;
            }
            if self.skip > 0 {
                let n = self.skip.min(data.len() - at);
                self.skip -= n;
                at += n;
                continue;
            }
            if self.over && self.have == 0 {
                // A frame boundary within this read, after the frame over
                // budget (whose header began in an earlier read).
                return Some(at);
            }
            let start = (self.have == 0).then_some(at);
            let n = (HEADER_LEN - self.have).min(data.len() - at);
            let (into, from) = (
                self.header.get_mut(self.have..self.have + n),
                data.get(at..at + n),
            );
            if let (Some(into), Some(from)) = (into, from) {
                into.copy_from_slice(from);
            }
            self.have += n;
            at += n;
            if self.have < HEADER_LEN {
                continue;
            }
            self.have = 0;
            let [l0, l1, l2, kind, flags, ..] = self.header;
            self.skip = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
            if is_control(kind, flags) && !spend() {
                self.over = true;
            }
            if self.over {
                if let Some(start) = start {
                    return Some(start);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = len.to_be_bytes()[1..].to_vec();
        out.extend([kind, flags]);
        out.extend(stream.to_be_bytes());
        out.extend(payload);
        out
    }

    fn preface() -> Vec<u8> {
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec()
    }

    /// Feeds `bytes` in reads of `step` bytes with a budget of `budget`
    /// control frames; returns the stream offset of the poisoned header.
    fn run(bytes: &[u8], step: usize, budget: usize) -> Option<usize> {
        let mut scan = FrameScan::default();
        let mut spent = 0;
        let mut offset = 0;
        for chunk in bytes.chunks(step) {
            let hit = scan.feed(chunk, || {
                spent += 1;
                spent <= budget
            });
            if let Some(at) = hit {
                return Some(offset + at);
            }
            offset += chunk.len();
        }
        None
    }

    #[test]
    fn requests_and_acks_are_free() {
        let mut bytes = preface();
        bytes.extend(frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]));
        for i in 0..1000u32 {
            bytes.extend(frame(0x1, 0x5, 2 * i + 1, &[0x82, 0x86, 0x84]));
            bytes.extend(frame(0x0, 0x1, 2 * i + 1, &[b'x'; 300]));
            bytes.extend(frame(SETTINGS, ACK, 0, &[]));
            bytes.extend(frame(PING, ACK, 0, &[0; 8]));
            bytes.extend(frame(0x8, 0, 0, &[0, 0, 1, 0]));
        }
        for step in [1, 7, 9, 100, 16384] {
            assert_eq!(run(&bytes, step, 1), None, "step {step}");
        }
    }

    #[test]
    fn a_flood_is_cut_at_the_first_frame_over_budget() {
        for (kind, flags, payload) in [
            (SETTINGS, 0, vec![0, 3, 0, 0, 0, 100]),
            (PING, 0, vec![0; 8]),
            (PRIORITY, 0, vec![0, 0, 0, 0, 16]),
            (RST_STREAM, 0, vec![0, 0, 0, 8]),
            (0x42, 0, vec![1, 2, 3]),
        ] {
            let mut bytes = preface();
            let one = frame(kind, flags, 0, &payload);
            for _ in 0..20 {
                bytes.extend(&one);
            }
            // Budget 10: the 11th frame is replaced.
            let eleventh = preface().len() + 10 * one.len();
            assert_eq!(run(&bytes, bytes.len(), 10), Some(eleventh), "{kind}");
            // Read byte by byte, no header lies within one read: the 11th
            // frame's header is already with h2, the 12th is replaced.
            let twelfth = eleventh + one.len();
            assert_eq!(run(&bytes, 1, 10), Some(twelfth), "{kind}, bytewise");
        }
    }

    #[test]
    fn a_header_split_across_reads_defers_to_the_next_frame() {
        let mut bytes = preface();
        let one = frame(PING, 0, 0, &[0; 8]);
        for _ in 0..5 {
            bytes.extend(&one);
        }
        // The 3rd frame's header straddles two reads: the 4th is replaced.
        let third = preface().len() + 2 * one.len();
        let mut scan = FrameScan::default();
        let mut spent = 0;
        let mut spend = || {
            spent += 1;
            spent <= 2
        };
        assert_eq!(scan.feed(&bytes[..third + 4], &mut spend), None);
        let rest = &bytes[third + 4..];
        assert_eq!(scan.feed(rest, &mut spend), Some(one.len() - 4));
    }

    #[test]
    fn never_panics_on_any_length() {
        // A frame announcing the largest length, then garbage.
        let mut bytes = preface();
        bytes.extend([0xff, 0xff, 0xff, SETTINGS, 0, 0, 0, 0, 0]);
        bytes.extend([0u8; 100]);
        assert_eq!(run(&bytes, bytes.len(), 0), Some(preface().len()));
        // Split, the cut waits for the next frame (h2 refuses a frame over
        // its maximum size itself).
        assert_eq!(run(&bytes, 3, 0), None);
        let mut scan = FrameScan::default();
        assert_eq!(scan.feed(&[], || false), None);
    }
}
