//! The rkyv plumbing every app shares: encode a command, reply or event; decode one; read a
//! command archived in place (validated first).

use ordo_core::machine::Context;
use rkyv::api::high::{HighSerializer, HighValidator};
use rkyv::rancor::Error;
use rkyv::ser::allocator::ArenaHandle;
use rkyv::util::AlignedVec;

/// Alignment the archives need (payloads in the mapped log are 32-byte aligned).
const ALIGN: usize = 16;

/// The archive of `value`.
pub fn encode<T>(value: &T) -> Vec<u8>
where
    T: for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, Error>>,
{
    rkyv::to_bytes::<Error>(value).expect("an app's values always encode").into_vec()
}

/// A value back from its archive; `what` names it in the error.
pub fn decode<T>(bytes: &[u8], what: &str) -> Result<T, String>
where
    T: rkyv::Archive,
    T::Archived: for<'a> rkyv::bytecheck::CheckBytes<HighValidator<'a, Error>>
        + rkyv::Deserialize<T, rkyv::api::high::HighDeserializer<Error>>,
{
    let mut aligned = AlignedVec::<ALIGN>::new();
    aligned.extend_from_slice(bytes);
    rkyv::from_bytes::<T, Error>(&aligned).map_err(|e| format!("not a {what}: {e}"))
}

/// Hands `read` the archive in `bytes`, validated (`None` if it is not one), in place when
/// the bytes are aligned for it, else from an aligned copy in `scratch`.
pub fn with_archived<T, R>(bytes: &[u8], scratch: &mut AlignedVec<ALIGN>, read: impl FnOnce(Option<&T>) -> R) -> R
where
    T: rkyv::Portable + for<'a> rkyv::bytecheck::CheckBytes<HighValidator<'a, Error>>,
{
    if (bytes.as_ptr() as usize).is_multiple_of(ALIGN) {
        return read(rkyv::access::<T, Error>(bytes).ok());
    }
    scratch.clear();
    scratch.extend_from_slice(bytes);
    read(rkyv::access::<T, Error>(scratch).ok())
}

thread_local! {
    /// The buffer replies and events are encoded into, reused: encoding one allocates
    /// nothing once it has grown to the largest (rkyv's scratch arena is per thread too).
    static ENCODED: std::cell::RefCell<AlignedVec<ALIGN>> = std::cell::RefCell::new(AlignedVec::new());
}

/// Encodes `value` into the reused buffer and hands the bytes to `take`.
fn encoded<T>(value: &T, take: impl FnOnce(&[u8]))
where
    T: for<'a> rkyv::Serialize<HighSerializer<AlignedVec<ALIGN>, ArenaHandle<'a>, Error>>,
{
    ENCODED.with_borrow_mut(|buffer| {
        let mut writer = std::mem::take(buffer);
        writer.clear();
        let writer = rkyv::api::high::to_bytes_in::<_, Error>(value, writer).expect("an app's values always encode");
        take(&writer);
        *buffer = writer;
    });
}

/// Replies with `value`'s archive.
pub fn reply<T>(ctx: &mut Context<'_>, value: &T)
where
    T: for<'a> rkyv::Serialize<HighSerializer<AlignedVec<ALIGN>, ArenaHandle<'a>, Error>>,
{
    encoded(value, |bytes| ctx.reply(bytes));
}

/// Emits `value`'s archive as an event.
pub fn emit<T>(ctx: &mut Context<'_>, value: &T)
where
    T: for<'a> rkyv::Serialize<HighSerializer<AlignedVec<ALIGN>, ArenaHandle<'a>, Error>>,
{
    encoded(value, |bytes| ctx.emit(bytes));
}

/// A whole number from a command-line word (`what` names it in the error).
pub(crate) fn number(word: Option<&&str>, what: &str) -> Result<u64, String> {
    let word = word.ok_or_else(|| format!("{what} is missing"))?;
    word.parse().map_err(|_| format!("{what} must be a whole number, not {word:?}"))
}

/// An app's snapshot: its whole state's archive.
pub fn snapshot<T>(state: &T, out: &mut Vec<u8>)
where
    T: for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, Error>>,
{
    out.extend_from_slice(&encode(state));
}

/// An app's state back from its snapshot, validated, and refused unless its invariants hold.
pub fn restore<T>(bytes: &[u8], what: &str) -> Result<T, String>
where
    T: rkyv::Archive + ordo_core::machine::StateMachine,
    T::Archived: for<'a> rkyv::bytecheck::CheckBytes<HighValidator<'a, Error>>
        + rkyv::Deserialize<T, rkyv::api::high::HighDeserializer<Error>>,
{
    let state: T = decode(bytes, what)?;
    state.check_invariants()?;
    Ok(state)
}
