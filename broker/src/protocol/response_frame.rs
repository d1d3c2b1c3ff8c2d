//! An encoded response as a list of chunks: the fields the encoder writes go into small owned
//! buffers, and large shared byte strings (a Fetch response's record sets, read from the log)
//! are kept by reference. The connection writes the chunks with vectored writes, so record
//! data is copied once (page cache to the read buffer) instead of again into one big response
//! buffer that would have to be allocated, zero-paged and grown for every fetch.
use std::io::IoSlice;
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;

/// Shared byte strings at least this long are referenced rather than copied.
pub const SHARE_AT_LEAST: usize = 16 * 1024;

/// The owned buffer starts this big; small responses fit in it.
const FIRST_CHUNK: usize = 256;

#[derive(Debug)]
enum Chunk {
    Owned(BytesMut),
    Shared(Bytes),
}

impl Chunk {
    fn as_slice(&self) -> &[u8] {
        match self {
            Chunk::Owned(b) => b,
            Chunk::Shared(b) => b,
        }
    }
}

/// The encoder's output: `done` chunks followed by the owned chunk being written.
#[derive(Debug)]
pub struct ResponseFrame {
    done: Vec<Chunk>,
    current: BytesMut,
    /// Bytes in `done`.
    done_len: usize,
}

impl Default for ResponseFrame {
    fn default() -> Self {
        ResponseFrame { done: Vec::new(), current: BytesMut::with_capacity(FIRST_CHUNK), done_len: 0 }
    }
}

impl ResponseFrame {
    pub fn new() -> Self {
        Self::default()
    }

    /// Total bytes encoded so far.
    pub fn len(&self) -> usize {
        self.done_len + self.current.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Overwrites bytes already written (the length prefix once the body is encoded). Only
    /// owned chunks can be patched; a range inside shared bytes is a caller bug and panics,
    /// like a slice index out of bounds would.
    pub fn patch(&mut self, at: usize, bytes: &[u8]) {
        self.range(at..at + bytes.len()).copy_from_slice(bytes);
    }

    /// The chunks in order, for a vectored write.
    pub fn chunks(&self) -> impl Iterator<Item = &[u8]> {
        self.done.iter().map(Chunk::as_slice).chain(std::iter::once(&self.current[..])).filter(|c| !c.is_empty())
    }

    /// How many chunks there are (shared record sets count one each).
    #[cfg(test)]
    pub fn chunk_count(&self) -> usize {
        self.chunks().count()
    }

    /// Fills `slices` with at most `max` bytes of the unwritten part of the frame, starting
    /// `skip` bytes in; returns how many slices it filled.
    pub fn io_slices<'a>(&'a self, mut skip: usize, mut max: usize, slices: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for chunk in self.chunks() {
            if n == slices.len() || max == 0 {
                break;
            }
            if skip >= chunk.len() {
                skip -= chunk.len();
                continue;
            }
            let take = (chunk.len() - skip).min(max);
            slices[n] = IoSlice::new(&chunk[skip..skip + take]);
            max -= take;
            skip = 0;
            n += 1;
        }
        n
    }

    /// The whole frame in one buffer.
    #[cfg(test)]
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        for c in self.chunks() {
            v.extend_from_slice(c);
        }
        v
    }

    fn finish_current(&mut self) {
        if !self.current.is_empty() {
            let full = std::mem::take(&mut self.current);
            self.done_len += full.len();
            self.done.push(Chunk::Owned(full));
        }
    }
}

// SAFETY: every method delegates to the owned `current` buffer, which upholds BufMut's
// contract itself (chunk_mut returns its spare capacity; advance_mut is forwarded unchanged).
unsafe impl BufMut for ResponseFrame {
    fn remaining_mut(&self) -> usize {
        self.current.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller initialised `cnt` bytes of the chunk `chunk_mut` returned, which
        // was `current`'s.
        unsafe { self.current.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut bytes::buf::UninitSlice {
        self.current.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        self.current.put_slice(src)
    }
}

impl ByteBufMut for ResponseFrame {
    fn offset(&self) -> usize {
        self.len()
    }

    fn seek(&mut self, offset: usize) {
        // Only used by record encoders that reserve gaps; they write into `current`.
        let within = offset.checked_sub(self.done_len).expect("seek back into a finished chunk");
        self.current.resize(within, 0);
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        if r.start >= self.done_len {
            let (s, e) = (r.start - self.done_len, r.end - self.done_len);
            return &mut self.current[s..e];
        }
        let mut base = 0;
        for chunk in &mut self.done {
            let len = chunk.as_slice().len();
            if r.start >= base && r.end <= base + len {
                if let Chunk::Owned(b) = chunk {
                    return &mut b[r.start - base..r.end - base];
                }
            }
            base += len;
        }
        panic!("range {r:?} is not inside one owned chunk of the response frame");
    }

    fn put_shared_bytes(&mut self, bytes: &Bytes) {
        if bytes.len() < SHARE_AT_LEAST {
            self.current.put_slice(bytes);
            return;
        }
        self.finish_current();
        self.done_len += bytes.len();
        self.done.push(Chunk::Shared(bytes.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_shared_bytes_are_referenced_and_small_ones_copied() {
        let mut f = ResponseFrame::new();
        f.put_i32(0);
        f.put_shared_bytes(&Bytes::from_static(b"small"));
        let big = Bytes::from(vec![7u8; SHARE_AT_LEAST]);
        f.put_shared_bytes(&big);
        f.put_u8(9);
        assert_eq!(f.len(), 4 + 5 + SHARE_AT_LEAST + 1);
        assert_eq!(f.chunk_count(), 3);
        let shared = f.chunks().nth(1).unwrap();
        assert_eq!(shared.as_ptr(), big.as_ptr(), "the record set is not copied");
        f.patch(0, &7i32.to_be_bytes());
        let v = f.to_vec();
        assert_eq!(&v[..4], &7i32.to_be_bytes());
        assert_eq!(&v[4..9], b"small");
        assert_eq!(v[v.len() - 1], 9);
    }

    #[test]
    fn a_fetch_response_encodes_to_the_same_bytes_as_into_one_buffer() {
        use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
        use kafka_protocol::messages::{FetchResponse, ResponseKind, TopicName};
        let records = Bytes::from((0..200_000u32).map(|i| i as u8).collect::<Vec<u8>>());
        let partitions = (0..3)
            .map(|p| PartitionData::default().with_partition_index(p).with_records(Some(records.slice(p as usize * 10..))))
            .collect();
        let topic = FetchableTopicResponse::default()
            .with_topic(TopicName(kafka_protocol::protocol::StrBytes::from_static_str("t")))
            .with_partitions(partitions);
        let response = ResponseKind::Fetch(FetchResponse::default().with_responses(vec![topic]));
        for version in [4, 11, 12] {
            let mut one = BytesMut::new();
            response.encode(&mut one, version).unwrap();
            let mut frame = ResponseFrame::new();
            response.encode(&mut frame, version).unwrap();
            assert_eq!(frame.to_vec(), one.to_vec(), "v{version}");
            assert!(frame.chunk_count() >= 6, "the three record sets are separate chunks");
        }
    }

    #[test]
    fn io_slices_resume_after_a_partial_write() {
        let mut f = ResponseFrame::new();
        f.put_slice(b"abc");
        f.put_shared_bytes(&Bytes::from(vec![1u8; SHARE_AT_LEAST]));
        f.put_slice(b"xyz");
        let mut slices = [IoSlice::new(&[]); 8];
        let n = f.io_slices(3 + SHARE_AT_LEAST - 2, usize::MAX, &mut slices);
        assert_eq!(n, 2);
        assert_eq!(&*slices[0], &[1u8, 1]);
        assert_eq!(&*slices[1], b"xyz");
        let n = f.io_slices(1, 4, &mut slices);
        assert_eq!(n, 2, "at most 4 bytes");
        assert_eq!((&*slices[0], &*slices[1]), (&b"bc"[..], &[1u8, 1][..]));
    }
}
