//! The socket's write side, owned by its writer. Each write is built in a buffer of its
//! own, freed once written: the queued frames as text frames, a ping or a close, then the
//! control frames the reader's protocol layer made meanwhile (`control.rs`). tungstenite's
//! write buffer, which this replaces, grew to the socket's largest batch (up to 8 KiB and
//! a frame) and kept that size for the socket's life; and the lock the two halves of a
//! split stream share is gone with it.
//!
//! Invariant: nothing is written after a close frame, whichever side made it (the writer,
//! or tungstenite answering the client's close).

use std::io;
use std::sync::Arc;

use chatbox_application::events::Frame;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use super::control::Control;
use crate::wire;

/// The opcodes this side writes (RFC 6455, section 5.2).
const TEXT: u8 = 0x1;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
/// The most a frame header takes: two bytes and a 64-bit length.
const HEADER_MAX_BYTES: usize = 10;
/// Frames are gathered up to this many bytes before they are written, so the frames a
/// writer takes from its queue at once leave in one system call, not one each, and a
/// long batch (a replay) is not copied whole first.
const WRITE_BATCH_BYTES: usize = 8 * 1024;

/// Writes frames to the client.
#[derive(Debug)]
pub(super) struct Outgoing {
    write: OwnedWriteHalf,
    control: Arc<Control>,
    /// Staged and not yet written: empty (and holding no memory) between writes, but for
    /// what a write given up on (a timeout, a close meanwhile) left, which the next write
    /// starts with, so no frame is cut.
    unwritten: Vec<u8>,
    /// A close frame was staged: nothing more is.
    closed: bool,
}

impl Outgoing {
    pub(super) const fn new(write: OwnedWriteHalf, control: Arc<Control>) -> Self {
        Self { write, control, unwritten: Vec::new(), closed: false }
    }

    /// Where the reader's control frames wait (the writer waits on it too).
    pub(super) fn control(&self) -> &Control {
        &self.control
    }

    /// Writes `frames`, each as one text frame, then the control frames waiting: in one
    /// write, or one per `WRITE_BATCH_BYTES` for a long batch.
    pub(super) async fn send_frames(&mut self, frames: &[Arc<Frame>]) -> io::Result<()> {
        let mut next = 0;
        loop {
            next = self.stage_frames(frames, next);
            self.flush().await?;
            if next >= frames.len() {
                return Ok(());
            }
        }
    }

    /// Writes a ping, and the control frames waiting.
    pub(super) async fn send_ping(&mut self) -> io::Result<()> {
        if !self.closed {
            header(&mut self.unwritten, PING, 0);
        }
        self.stage_control();
        self.flush().await
    }

    /// Writes the control frames waiting (pongs, the reply to a client's close), then
    /// `close` if given and no close frame was written yet.
    pub(super) async fn send_close(&mut self, close: Option<&CloseFrame>) -> io::Result<()> {
        self.stage_control();
        if let Some(close) = close.filter(|_| !self.closed) {
            let reason = close.reason.as_bytes();
            header(&mut self.unwritten, CLOSE, reason.len().saturating_add(2));
            self.unwritten.extend_from_slice(&u16::from(close.code).to_be_bytes());
            self.unwritten.extend_from_slice(reason);
            self.closed = true;
        }
        self.flush().await
    }

    /// Writes the control frames waiting.
    pub(super) async fn send_control(&mut self) -> io::Result<()> {
        self.stage_control();
        self.flush().await
    }

    /// Stages the frames from `from` on, whole, up to `WRITE_BATCH_BYTES` (at least one),
    /// and after the last of them the control frames waiting; returns where the next
    /// write starts.
    fn stage_frames(&mut self, frames: &[Arc<Frame>], from: usize) -> usize {
        let mut next = if self.closed { frames.len() } else { from };
        let mut staged = 0usize;
        while let Some(frame) = frames.get(next) {
            let payload = frame.encoded(wire::encode);
            if staged > 0 && staged.saturating_add(payload.len()) > WRITE_BATCH_BYTES {
                return next;
            }
            self.unwritten.reserve(payload.len().saturating_add(HEADER_MAX_BYTES));
            header(&mut self.unwritten, TEXT, payload.len());
            self.unwritten.extend_from_slice(&payload);
            staged = staged.saturating_add(payload.len());
            next += 1;
        }
        self.stage_control();
        next
    }

    /// Stages the control frames waiting, up to and including a close frame.
    fn stage_control(&mut self) {
        let Some(control) = self.control.take() else { return };
        for (opcode, frame) in frames(&control) {
            if self.closed {
                break;
            }
            self.unwritten.extend_from_slice(frame);
            self.closed = opcode == CLOSE;
        }
    }

    /// Writes what is staged. Given up on (its future dropped), it leaves what is not
    /// written staged: each `write` either writes or not.
    async fn flush(&mut self) -> io::Result<()> {
        while !self.unwritten.is_empty() {
            match self.write.write(&self.unwritten).await? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                // Nothing is kept between writes.
                all if all == self.unwritten.len() => self.unwritten = Vec::new(),
                some => drop(self.unwritten.drain(..some)),
            }
        }
        Ok(())
    }
}

/// A final, unmasked frame's header: its opcode and its payload's length.
fn header(out: &mut Vec<u8>, opcode: u8, length: usize) {
    out.push(0x80 | opcode);
    match (u8::try_from(length), u16::try_from(length)) {
        (Ok(short @ 0..=125), _) => out.push(short),
        (_, Ok(medium)) => {
            out.push(126);
            out.extend_from_slice(&medium.to_be_bytes());
        }
        _ => {
            out.push(127);
            out.extend_from_slice(&u64::try_from(length).unwrap_or(u64::MAX).to_be_bytes());
        }
    }
}

/// The whole frames in `bytes` (unmasked, as a server writes them), with their opcodes;
/// a frame cut short ends the list.
fn frames(mut bytes: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (&first, &second) = (bytes.first()?, bytes.get(1)?);
        let (header_bytes, length) = match second & 0x7f {
            126 => (4, u64::from(u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?]))),
            127 => (10, u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?)),
            short => (2, u64::from(short)),
        };
        let mask_bytes = if second & 0x80 == 0 { 0 } else { 4 };
        let end = usize::try_from(length).ok()?.checked_add(header_bytes + mask_bytes)?;
        let frame = bytes.get(..end)?;
        bytes = &bytes[end..];
        Some((first & 0x0f, frame))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::Utf8Bytes;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};

    fn tungstenite_bytes(frame: WsFrame) -> Vec<u8> {
        let mut out = Vec::new();
        frame.format(&mut out).expect("a frame");
        out
    }

    #[test]
    fn headers_are_written_as_tungstenite_writes_them_at_every_length_boundary() {
        for length in [0, 1, 125, 126, 127, 65_535, 65_536, 70_000] {
            let payload = vec![b'a'; length];
            let mut ours = Vec::new();
            header(&mut ours, TEXT, length);
            ours.extend_from_slice(&payload);
            let theirs = tungstenite_bytes(WsFrame::message(payload, OpCode::Data(Data::Text), true));
            assert_eq!(ours, theirs, "a text frame of {length} bytes");
        }
        let mut ping = Vec::new();
        header(&mut ping, PING, 0);
        assert_eq!(ping, tungstenite_bytes(WsFrame::ping(Vec::new())));
    }

    /// A connected pair: the server's write side, its control frames' relay (written to as
    /// tungstenite writes), and the client's end.
    async fn connected() -> (Outgoing, super::super::control::ReadSide, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let client = tokio::net::TcpStream::connect(listener.local_addr().expect("an address"));
        let (client, accepted) = tokio::join!(client, listener.accept());
        let (read, write) = accepted.expect("accepted").0.into_split();
        let control = Arc::new(Control::default());
        let read_side = super::super::control::ReadSide::new(read, Arc::clone(&control));
        (Outgoing::new(write, control), read_side, client.expect("connected"))
    }

    fn notice(text: &str) -> Arc<Frame> {
        use chatbox_application::events::ServerEvent;
        Frame::new(ServerEvent::Notification { content: text.into() }, chatbox_domain::Timestamp::default())
    }

    fn text_frame(frame: &Arc<Frame>) -> Vec<u8> {
        let payload = frame.encoded(wire::encode).to_vec();
        tungstenite_bytes(WsFrame::message(payload, OpCode::Data(Data::Text), true))
    }

    /// Ends the write side, and returns everything the client received, within a deadline.
    async fn received_by(client: &mut tokio::net::TcpStream, outgoing: Outgoing) -> Vec<u8> {
        drop(outgoing);
        let mut received = Vec::new();
        tokio::time::timeout(std::time::Duration::from_secs(10), client.read_to_end(&mut received))
            .await
            .expect("the write half ends")
            .expect("read");
        received
    }

    #[tokio::test]
    async fn control_frames_follow_the_batch_and_nothing_follows_a_close() {
        let (mut outgoing, mut read_side, mut client) = connected().await;
        let (first, second) = (notice("one"), notice("two"));
        let pong = tungstenite_bytes(WsFrame::pong(b"p".to_vec()));
        let reply = CloseFrame { code: CloseCode::Normal, reason: Utf8Bytes::from_static("") };
        let reply = tungstenite_bytes(WsFrame::close(Some(reply)));
        read_side.write_all(&[pong.clone(), reply.clone()].concat()).await.expect("kept");
        outgoing.send_frames(&[Arc::clone(&first)]).await.expect("written");
        // After the close reply nothing is written: neither frames, nor a ping, nor a close.
        outgoing.send_frames(&[Arc::clone(&second)]).await.expect("nothing to write");
        outgoing.send_ping().await.expect("nothing to write");
        let away =
            CloseFrame { code: CloseCode::Away, reason: Utf8Bytes::from_static("Server shutting down") };
        outgoing.send_close(Some(&away)).await.expect("nothing to write");
        let received = received_by(&mut client, outgoing).await;
        assert_eq!(received, [text_frame(&first), pong, reply].concat());
    }

    #[tokio::test]
    async fn a_close_is_written_after_the_control_frames_waiting_and_only_once() {
        let (mut outgoing, mut read_side, mut client) = connected().await;
        let pong = tungstenite_bytes(WsFrame::pong(Vec::new()));
        read_side.write_all(&pong).await.expect("kept");
        let away =
            CloseFrame { code: CloseCode::Away, reason: Utf8Bytes::from_static("Server shutting down") };
        outgoing.send_close(Some(&away)).await.expect("written");
        outgoing.send_close(Some(&away)).await.expect("nothing to write");
        // tungstenite answering the client's close reply is dropped: a close went already.
        let reply = tungstenite_bytes(WsFrame::close(None));
        read_side.write_all(&reply).await.expect("kept");
        outgoing.send_control().await.expect("nothing to write");
        let received = received_by(&mut client, outgoing).await;
        assert_eq!(received, [pong, tungstenite_bytes(WsFrame::close(Some(away)))].concat());
    }

    #[tokio::test]
    async fn a_write_given_up_on_is_finished_before_the_next_so_no_frame_is_cut() {
        let (mut outgoing, _read_side, mut client) = connected().await;
        // More than the connection's buffers hold while the client reads nothing.
        let big: Vec<_> = (0..32).map(|n| notice(&format!("{n}{}", "x".repeat(1 << 20)))).collect();
        let given_up =
            tokio::time::timeout(std::time::Duration::from_millis(200), outgoing.send_frames(&big)).await;
        assert!(given_up.is_err(), "the client reads nothing: the write cannot finish");
        let away =
            CloseFrame { code: CloseCode::Away, reason: Utf8Bytes::from_static("Server shutting down") };
        // The client reads while the close is written: what was left goes first.
        let closing = async {
            outgoing.send_close(Some(&away)).await.expect("written");
            drop(outgoing);
        };
        let reading = async {
            let mut received = Vec::new();
            let read = client.read_to_end(&mut received);
            tokio::time::timeout(std::time::Duration::from_secs(10), read)
                .await
                .expect("in time")
                .expect("read");
            received
        };
        let ((), received) = tokio::join!(closing, reading);
        // Every frame begun went whole (the write stopped after the first chunks, at a
        // frame's end or inside one), then the close.
        let close = tungstenite_bytes(WsFrame::close(Some(away)));
        assert!(received.ends_with(&close), "the close comes last");
        let body = &received[..received.len() - close.len()];
        let mut at = 0;
        for frame in &big {
            if at == body.len() {
                break;
            }
            let whole = text_frame(frame);
            assert_eq!(body.get(at..at + whole.len()), Some(&whole[..]), "a whole frame at {at}");
            at += whole.len();
        }
        assert_eq!(at, body.len(), "nothing but whole frames before the close");
        assert!(at > 0, "some frames went before the write was given up on");
    }

    #[test]
    fn control_frames_are_split_whole_with_their_opcodes() {
        let close = CloseFrame { code: CloseCode::Away, reason: Utf8Bytes::from_static("bye") };
        let pong = tungstenite_bytes(WsFrame::pong(vec![7; 125]));
        let long_pong = tungstenite_bytes(WsFrame::pong(vec![7; 300]));
        let close = tungstenite_bytes(WsFrame::close(Some(close)));
        let joined = [pong.clone(), long_pong.clone(), close.clone()].concat();
        let split: Vec<_> = frames(&joined).collect();
        assert_eq!(split, vec![(0xa, &pong[..]), (0xa, &long_pong[..]), (CLOSE, &close[..])]);
        assert_eq!(frames(&close[..close.len() - 1]).count(), 0, "a frame cut short is not one");
    }
}
