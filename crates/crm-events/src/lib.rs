//! The one owner of the persisted event format.
//!
//! - [`encode`] / [`decode`]: an event and its [`EventMeta`] to and from its body
//!   (envelope, postcard payload, SHA-256 over the stored bytes).
//! - [`encode_message`] / [`decode_message`]: a stored message holds one event body or a
//!   group of a command's consecutive events on one aggregate.
//! - [`SubjectScheme`]: the subject each aggregate's messages are stored on.
//! - [`ChainVerifier`]: checks an aggregate's history is an unbroken hash chain.
//! - [`quarantine`]: records of stream positions set aside as not ours, on their own
//!   subject and hash chain.
//! - [`anchor`]: the notary's signed anchors and the running digest over the whole
//!   stream they sign.
//! - [`seal`]: personal text sealed under its data subject's key (crypto-shredding);
//!   [`Envelope::unseal`] opens it, or marks it erased when the key is gone.
//! - `payload`: versioned payload encoding; every event type and schema version ever
//!   written decodes forever (old versions are upcast to the current domain event).
//!
//! Domain types are not `Serialize`: the wire structs in `wire` mirror them, with
//! explicit conversions, so changing a domain type can never silently change the format.

pub mod anchor;
mod envelope;
mod payload;
pub mod personal;
pub mod quarantine;
pub mod seal;
mod subject;
mod wire;

pub use envelope::{
    ChainError, ChainVerifier, DecodeError, ENVELOPE_FORMAT_V1, EncodedEvent, Envelope, EventHash,
    EventMeta, MESSAGE_FORMAT_GROUP, decode, decode_message, encode, encode_message, encode_sealed,
    encode_sealed_with, verify_hash,
};
pub use payload::{PayloadError, decode_payload, encode_payload, payload_json, schema_versions};
pub use seal::{SealError, Sealing};
pub use subject::{DEFAULT_PREFIX, SubjectScheme};
