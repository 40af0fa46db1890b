//! The persisted shape of every event payload: serde structs encoded with postcard.
//!
//! Domain types are not `Serialize`. Each schema version has a module (`v1`, later `v2`,
//! ...) with one struct per event type mirroring the domain event's fields, wire mirrors
//! of the value types it carries, and explicit conversions both ways (`TryFrom` where the
//! domain type validates, e.g. a currency code).
//!
//! # The format is forever
//!
//! Every payload ever written must decode forever, and postcard is not self-describing:
//!
//! - a struct is its fields in declaration order, with no names or tags;
//! - an enum is its variant *index* (a varint) followed by the variant's fields;
//! - `Option` is a 0/1 byte then the value, `bool` a 0/1 byte, `u8`/`i8` one raw byte;
//!   wider integers are varints (zigzag for signed ones);
//! - strings and `Vec`s are a varint length then the items; arrays (`[u8; 16]` ids,
//!   `[u8; 3]` currencies) are just their items.
//!
//! So a type in a published version module never changes: NEVER reorder, insert, remove or
//! retype a field, and NEVER reorder, insert or remove an enum variant, not even at the end.
//!
//! # Changing an event
//!
//! When an event's fields change (or a value type it carries does):
//!
//! 1. add its new struct to the next version module, e.g. `v2::OrderPlaced` (`v2` may
//!    `pub use super::v1::...` the types that did not change), with conversions to and
//!    from the domain, and encode with it in `payload::encode_payload`;
//! 2. keep the `v1` struct: drop its `From<domain>` (nothing writes v1 any more) and turn
//!    its conversion into the domain into an `upcast` fn from v1 to the *current* domain
//!    event, filling what v1 lacked with a documented default; the `(event_type, 1)` arm
//!    of `payload::decode_payload` keeps calling it;
//! 3. bump the event's current version in `payload::schema_versions`;
//! 4. add a golden fixture of the new version under `tests/fixtures`. Old fixtures are
//!    never rewritten: they prove old bytes still decode.

use std::convert::Infallible;

pub mod v1;
pub mod v2;

/// A wire value the domain type cannot hold (e.g. a currency code that is not three
/// upper-case letters). Becomes [`crate::PayloadError::Invalid`].
#[derive(Debug)]
pub struct Invalid {
    pub field: &'static str,
    pub reason: String,
}

impl From<Infallible> for Invalid {
    fn from(never: Infallible) -> Self {
        match never {}
    }
}
