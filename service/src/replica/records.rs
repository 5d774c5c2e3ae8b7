//! What the service agent tells the consensus agent, as records in a single-producer
//! single-consumer byte ring (`rtrb`): responses for clients, sessions opened and closed
//! (for routing), and duties the leader must sequence. Each record is a 4-byte length and
//! its bytes, copied in and out of the ring; nothing is allocated per record.

use ordo_core::{EntryKind, Position, SessionId};
use ordo_transport::ResponseStatus;
use rtrb::{Consumer, Producer};

/// The largest record (a response with a reply of up to this many bytes fits).
pub const REPLY_BYTES_MAX: usize = 64 * 1024;
const RECORD_BYTES_MAX: usize = REPLY_BYTES_MAX + 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record<'a> {
    Response { session: SessionId, sequence: u64, position: Position, status: ResponseStatus, reply: &'a [u8] },
    Opened { session: SessionId, client_nonce: u64, position: Position },
    Closed { session: SessionId },
    Duty { kind: EntryKind, session: SessionId, correlation: u64 },
}

const RESPONSE: u8 = 1;
const OPENED: u8 = 2;
const CLOSED: u8 = 3;
const DUTY: u8 = 4;

impl Record<'_> {
    fn encoded_bytes(&self) -> usize {
        match self {
            Record::Response { reply, .. } => 1 + 8 + 8 + 8 + 1 + reply.len(),
            Record::Opened { .. } => 1 + 24,
            Record::Closed { .. } => 1 + 8,
            Record::Duty { .. } => 1 + 1 + 16,
        }
    }

    fn encode(&self, out: &mut [u8]) {
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            out[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        match *self {
            Record::Response { session, sequence, position, status, reply } => {
                put(&[RESPONSE]);
                put(&session.0.to_le_bytes());
                put(&sequence.to_le_bytes());
                put(&position.0.to_le_bytes());
                put(&[status as u8]);
                put(reply);
            }
            Record::Opened { session, client_nonce, position } => {
                put(&[OPENED]);
                put(&session.0.to_le_bytes());
                put(&client_nonce.to_le_bytes());
                put(&position.0.to_le_bytes());
            }
            Record::Closed { session } => {
                put(&[CLOSED]);
                put(&session.0.to_le_bytes());
            }
            Record::Duty { kind, session, correlation } => {
                put(&[DUTY, kind as u8]);
                put(&session.0.to_le_bytes());
                put(&correlation.to_le_bytes());
            }
        }
    }

    /// Decodes a record this module encoded (the ring is in-process: a bad one is a bug).
    fn decode(bytes: &[u8]) -> Record<'_> {
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        match bytes[0] {
            RESPONSE => Record::Response {
                session: SessionId(u64_at(1)),
                sequence: u64_at(9),
                position: Position(u64_at(17)),
                status: ResponseStatus::from_u8(bytes[25]).expect("encoded from a status"),
                reply: &bytes[26..],
            },
            OPENED => Record::Opened {
                session: SessionId(u64_at(1)),
                client_nonce: u64_at(9),
                position: Position(u64_at(17)),
            },
            CLOSED => Record::Closed { session: SessionId(u64_at(1)) },
            DUTY => Record::Duty {
                kind: EntryKind::from_u8(bytes[1]).expect("encoded from a kind"),
                session: SessionId(u64_at(2)),
                correlation: u64_at(10),
            },
            other => unreachable!("record type {other} was never encoded"),
        }
    }
}

/// The service's end: writes records.
pub struct RecordWriter {
    ring: Producer<u8>,
    scratch: Box<[u8]>,
}

/// The consensus' end: reads them.
pub struct RecordReader {
    ring: Consumer<u8>,
    scratch: Box<[u8]>,
}

/// A ring of `capacity_bytes` between the two agents.
pub fn ring(capacity_bytes: usize) -> (RecordWriter, RecordReader) {
    let (producer, consumer) = rtrb::RingBuffer::new(capacity_bytes.max(2 * RECORD_BYTES_MAX));
    let scratch = || vec![0u8; RECORD_BYTES_MAX + 4].into_boxed_slice();
    (RecordWriter { ring: producer, scratch: scratch() }, RecordReader { ring: consumer, scratch: scratch() })
}

impl RecordWriter {
    /// Whether a record with a reply of `reply_bytes` fits now (the service waits if not:
    /// back-pressure, never a dropped response).
    pub fn has_room(&self, reply_bytes: usize) -> bool {
        self.ring.slots() >= 4 + 27 + reply_bytes.min(REPLY_BYTES_MAX)
    }

    /// Writes `record`; `false` if the ring is too full (nothing written).
    pub fn write(&mut self, record: &Record<'_>) -> bool {
        let length = record.encoded_bytes();
        assert!(length <= RECORD_BYTES_MAX, "a reply of more than {REPLY_BYTES_MAX} bytes");
        let Ok(mut chunk) = self.ring.write_chunk(4 + length) else { return false };
        self.scratch[..4].copy_from_slice(&(length as u32).to_le_bytes());
        record.encode(&mut self.scratch[4..4 + length]);
        let (first, second) = chunk.as_mut_slices();
        let split = first.len();
        first.copy_from_slice(&self.scratch[..split]);
        second.copy_from_slice(&self.scratch[split..4 + length]);
        chunk.commit_all();
        true
    }
}

impl RecordReader {
    /// Hands each record written so far to `take`; returns how many.
    pub fn read(&mut self, take: &mut dyn FnMut(Record<'_>)) -> usize {
        let mut count = 0;
        loop {
            // The length is peeked, not committed: the whole record is read below.
            let mut length = [0u8; 4];
            match self.ring.read_chunk(4) {
                Ok(header) => {
                    let (first, second) = header.as_slices();
                    length[..first.len()].copy_from_slice(first);
                    length[first.len()..].copy_from_slice(second);
                }
                Err(_) => return count,
            }
            let length = u32::from_le_bytes(length) as usize;
            let chunk = self.ring.read_chunk(4 + length).expect("a record is written whole");
            let (first, second) = chunk.as_slices();
            self.scratch[..first.len()].copy_from_slice(first);
            self.scratch[first.len()..first.len() + second.len()].copy_from_slice(second);
            chunk.commit_all();
            take(Record::decode(&self.scratch[4..4 + length]));
            count += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_pass_through_the_ring_in_order_wrapping_around() {
        let (mut writer, mut reader) = ring(0);
        let reply = vec![7u8; 1000];
        let mut seen = Vec::new();
        for round in 0..500u64 {
            let records = [
                Record::Response {
                    session: SessionId(round),
                    sequence: round + 1,
                    position: Position(round * 64),
                    status: ResponseStatus::Applied,
                    reply: &reply[..(round as usize * 7) % 1000],
                },
                Record::Opened { session: SessionId(round), client_nonce: 9, position: Position(1) },
                Record::Closed { session: SessionId(round) },
                Record::Duty { kind: EntryKind::Timer, session: SessionId(0), correlation: round },
            ];
            for record in &records {
                assert!(writer.write(record));
            }
            reader.read(&mut |record| seen.push(format!("{record:?}")));
            let expected: Vec<String> = records.iter().map(|r| format!("{r:?}")).collect();
            assert_eq!(seen, expected, "round {round}");
            seen.clear();
        }
    }

    #[test]
    fn a_full_ring_refuses_and_takes_again_once_read() {
        let (mut writer, mut reader) = ring(0);
        let reply = vec![1u8; REPLY_BYTES_MAX];
        let record = Record::Response {
            session: SessionId(1),
            sequence: 1,
            position: Position(0),
            status: ResponseStatus::Applied,
            reply: &reply,
        };
        let mut written = 0;
        while writer.write(&record) {
            written += 1;
        }
        assert!(written >= 2 && !writer.has_room(REPLY_BYTES_MAX));
        assert_eq!(reader.read(&mut |_| {}), written);
        assert!(writer.write(&record));
    }
}
