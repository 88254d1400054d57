//! Read ahead on a thread of its own: a [`Read`] that runs another reader
//! (a gunzip, a patch chain) on a separate thread and hands its bytes over
//! in chunks through a bounded channel, so producing a stream and consuming
//! it use two cores instead of one.
//!
//! Invariants:
//! - the bytes and their order are exactly the inner reader's; an error from
//!   the inner reader is returned by `read` after every byte before it, and
//!   every later `read` returns an error too (never a silent EOF);
//! - EOF is returned only after the inner reader returned EOF;
//! - memory is bounded by `DEPTH + 2` chunks, whatever the stream's size
//!   (chunks are handed back and reused, not allocated and zeroed anew);
//! - dropping the reader early stops the thread at its next send.

use std::io::{self, Read};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::{self, JoinHandle};

/// Bytes per chunk handed over.
const CHUNK: usize = 1 << 20;
/// Chunks the producer may be ahead.
const DEPTH: usize = 2;

type Msg = io::Result<Vec<u8>>;

/// See the module documentation.
pub struct ReadAhead {
    rx: Option<Receiver<Msg>>,
    /// Used chunks, back to the producer.
    back: Sender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    failed: Option<(io::ErrorKind, String)>,
    eof: bool,
    thread: Option<JoinHandle<()>>,
}

impl ReadAhead {
    /// Start reading `inner` on a new thread named `name`.
    pub fn spawn(name: &str, mut inner: impl Read + Send + 'static) -> io::Result<ReadAhead> {
        let (tx, rx) = mpsc::sync_channel::<Msg>(DEPTH);
        let (back, back_rx) = mpsc::channel::<Vec<u8>>();
        let thread = thread::Builder::new()
            .name(name.into())
            .spawn(move || loop {
                let mut buf = back_rx.try_recv().unwrap_or_default();
                buf.resize(CHUNK, 0);
                let mut n = 0;
                // Fill the chunk (fewer, larger hand-overs), stopping at EOF.
                let res = loop {
                    match inner.read(&mut buf[n..]) {
                        Ok(0) => break Ok(()),
                        Ok(k) => {
                            n += k;
                            if n == buf.len() {
                                break Ok(());
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                buf.truncate(n);
                let end = n == 0;
                if n > 0 && tx.send(Ok(buf)).is_err() {
                    return; // the consumer went away
                }
                match res {
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                    Ok(()) if end => {
                        let _ = tx.send(Ok(Vec::new()));
                        return;
                    }
                    Ok(()) => {}
                }
            })?;
        Ok(ReadAhead {
            rx: Some(rx),
            back,
            cur: Vec::new(),
            pos: 0,
            failed: None,
            eof: false,
            thread: Some(thread),
        })
    }
}

impl Read for ReadAhead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        while self.pos == self.cur.len() {
            if let Some((kind, msg)) = &self.failed {
                return Err(io::Error::new(*kind, msg.clone()));
            }
            if self.eof {
                return Ok(0);
            }
            let msg = match self.rx.as_ref().map(Receiver::recv) {
                Some(Ok(m)) => m,
                _ => Err(io::Error::other("the read-ahead thread stopped")),
            };
            match msg {
                Ok(chunk) if chunk.is_empty() => self.eof = true,
                Ok(chunk) => {
                    let used = std::mem::replace(&mut self.cur, chunk);
                    if used.capacity() >= CHUNK {
                        // The producer may have ended: then it is dropped.
                        let _ = self.back.send(used);
                    }
                    self.pos = 0;
                }
                Err(e) => {
                    self.failed = Some((e.kind(), e.to_string()));
                    // The first report keeps the inner error as it was (a
                    // library error inside it is recovered by the caller).
                    return Err(e);
                }
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        // Closing the channel makes the producer's next send fail: it ends.
        self.rx = None;
        if let Some(t) = self.thread.take() {
            if self.eof || self.failed.is_some() {
                let _ = t.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gives `data` in uneven pieces, then fails if `fail` is set.
    struct Jagged {
        data: Vec<u8>,
        pos: usize,
        fail: bool,
    }

    impl Read for Jagged {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.pos == self.data.len() {
                return if self.fail {
                    Err(io::Error::new(io::ErrorKind::InvalidData, "broken input"))
                } else {
                    Ok(0)
                };
            }
            let n = out
                .len()
                .min(1 + self.pos % 7919)
                .min(self.data.len() - self.pos);
            out[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 131 % 251) as u8).collect()
    }

    #[test]
    fn passes_every_byte_in_order() {
        for n in [0, 1, CHUNK - 1, CHUNK, 3 * CHUNK + 17] {
            let d = data(n);
            let mut r = ReadAhead::spawn(
                "t",
                Jagged {
                    data: d.clone(),
                    pos: 0,
                    fail: false,
                },
            )
            .unwrap();
            let mut got = Vec::new();
            r.read_to_end(&mut got).unwrap();
            assert_eq!(got, d, "n = {n}");
            assert_eq!(r.read(&mut [0u8; 8]).unwrap(), 0);
        }
    }

    #[test]
    fn an_error_comes_after_the_bytes_before_it_and_sticks() {
        let d = data(2 * CHUNK + 5);
        let mut r = ReadAhead::spawn(
            "t",
            Jagged {
                data: d.clone(),
                pos: 0,
                fail: true,
            },
        )
        .unwrap();
        let mut got = vec![0u8; d.len()];
        r.read_exact(&mut got).unwrap();
        assert_eq!(got, d);
        let e = r.read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("broken input"));
        let again = r.read(&mut [0u8; 8]).unwrap_err();
        assert!(again.to_string().contains("broken input"));
    }

    #[test]
    fn dropping_early_does_not_hang() {
        let r = ReadAhead::spawn(
            "t",
            Jagged {
                data: data(20 * CHUNK),
                pos: 0,
                fail: false,
            },
        )
        .unwrap();
        drop(r);
    }
}
