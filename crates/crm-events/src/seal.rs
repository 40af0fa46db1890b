//! Sealed personal text (crypto-shredding): the personal text of an event (every value
//! [`crate::personal::personal_text_mut`] yields) is written encrypted under its data
//! subject's key, so destroying that key erases the person from the log without
//! changing a byte of it: every hash chain and anchor still verifies.
//!
//! # The format is forever
//!
//! Each event type that can carry personal text has a **sealed schema version**
//! ([`SEALED`]): its payload is
//!
//! ```text
//! [postcard(Seal)] [postcard(the plain version's struct, every personal text emptied)]
//! ```
//!
//! where `Seal` is the list of sealed texts in the order `personal_text_mut` yields
//! them, each `[nonce: 24 bytes][XChaCha20-Poly1305 ciphertext + tag]` under the
//! subject's 256-bit data key with associated data
//! `"crm-pii/1" || event id (16) || position (u16, big-endian) || field path`, so a
//! ciphertext moved to another event or field does not open. Nonces are random (192
//! bits: no coordination needed between writers).
//!
//! The data subject is the event's aggregate: a customer, or a lead (whose key is
//! destroyed with the customer it was converted into). Campaign events have no subject
//! and are never sealed. Events written before sealing (plain versions) stay readable
//! and cannot be shredded.
//!
//! A decoded sealed event holds empty strings in place of its personal text and
//! [`Sealing::Sealed`] until [`crate::Envelope::unseal`] opens it with the key, or
//! marks it [`Sealing::Erased`] when the key is gone.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use crm_domain::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::personal::personal_text_mut;

/// (event type, the plain schema version a sealed payload wraps, the sealed schema
/// version), sorted by event type. FROZEN: a row never changes once written. The day an
/// event's plain struct changes, its sealed form needs a new version too: make this a
/// table of every sealed version ever written (several rows per type), and keep
/// decoding the old ones.
pub const SEALED: &[(&str, u16, u16)] = &[
    ("customer.consent_changed", 1, 2),
    ("customer.interaction_logged", 1, 2),
    ("customer.opportunity_reopened", 1, 2),
    ("customer.profile_updated", 1, 2),
    ("customer.registered", 1, 2),
    ("customer.return_recorded", 1, 2),
    ("customer.ticket_closed", 1, 2),
    ("customer.ticket_opened", 1, 2),
    ("customer.ticket_reopened", 1, 2),
    ("customer.ticket_resolved", 1, 2),
    ("lead.captured", 1, 2),
    ("lead.qualified", 1, 2),
];

/// The (plain, sealed) schema versions of an event type written sealed.
#[must_use]
pub fn sealed_versions(event_type: &str) -> Option<(u16, u16)> {
    SEALED
        .binary_search_by(|(t, _, _)| (*t).cmp(event_type))
        .ok()
        .map(|i| (SEALED[i].1, SEALED[i].2))
}

/// Whether events of this type are written sealed (they can carry personal text).
#[must_use]
pub fn is_sealed_type(event_type: &str) -> bool {
    sealed_versions(event_type).is_some()
}

pub(crate) const NONCE: usize = 24;
const AAD: &[u8] = b"crm-pii/1";

/// One sealed text.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct SealedText {
    pub nonce: [u8; NONCE],
    pub ciphertext: Vec<u8>,
}

/// An event's sealed texts, in `personal_text_mut` order.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct Seal {
    pub fields: Vec<SealedText>,
}

/// Where the data subjects' keys come from (`crm_store`'s key ring): what the read
/// side and the tools open sealed text with.
pub trait KeySource: Send + Sync + std::fmt::Debug {
    /// The key of `subject` (a customer or lead id); `Ok(None)` when it has none (the
    /// subject was forgotten). May block the calling thread while the key store answers.
    ///
    /// # Errors
    /// The key store cannot answer now (the caller tries again later, and never treats
    /// the text as erased).
    fn key(&self, subject: Uuid) -> Result<Option<[u8; 32]>, String>;

    /// Drops any copy of these subjects' keys kept in memory: they were forgotten.
    fn evict(&self, subjects: &[Uuid]);

    /// Loads the keys of these subjects that are not in memory yet, many at once, so
    /// that [`Self::key`] answers them without a round trip each (a rebuild meets
    /// thousands of subjects per batch). Failures are left for `key` to report.
    fn prefetch<'a>(
        &'a self,
        subjects: &'a [Uuid],
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        let _ = subjects;
        Box::pin(std::future::ready(()))
    }
}

/// What a decoded event's personal text is.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Sealing {
    /// Written in the clear: an event type without personal text, or written before
    /// sealing (cannot be shredded).
    Plain,
    /// Sealed and not opened: the event holds empty strings in place of its personal
    /// text.
    Sealed(Seal),
    /// Opened with the data subject's key: the event holds its text.
    Opened,
    /// The data subject's key is gone (forgotten): every personal text is empty.
    Erased,
}

/// Why sealed text could not be opened.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum SealError {
    #[error(
        "sealed `{path}` (text {index}) does not open with the data subject's key: another key, or the event was altered"
    )]
    DoesNotOpen { index: usize, path: &'static str },
    #[error("sealed `{path}` (text {index}) is not UTF-8 once opened")]
    NotText { index: usize, path: &'static str },
    #[error("no random nonce: {0}")]
    Random(String),
}

fn aad(event_id: Uuid, index: usize, path: &str) -> Vec<u8> {
    let mut a = Vec::with_capacity(AAD.len() + 18 + path.len());
    a.extend_from_slice(AAD);
    a.extend_from_slice(event_id.as_bytes());
    // personal_text_mut yields far fewer than 65,536 texts (lists are bounded).
    a.extend_from_slice(&u16::try_from(index).unwrap_or(u16::MAX).to_be_bytes());
    a.extend_from_slice(path.as_bytes());
    a
}

/// Random nonces from the operating system.
///
/// # Errors
/// The operating system has no randomness to give.
pub fn random_nonce() -> Result<[u8; NONCE], SealError> {
    let mut n = [0u8; NONCE];
    getrandom::getrandom(&mut n).map_err(|e| SealError::Random(e.to_string()))?;
    Ok(n)
}

/// Empties the personal text of `event` (in place) and returns it sealed under `key`.
pub(crate) fn seal_text(
    event: &mut DomainEvent,
    event_id: Uuid,
    key: &[u8; 32],
    nonce: &mut dyn FnMut() -> Result<[u8; NONCE], SealError>,
) -> Result<Seal, SealError> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let mut fields = Vec::new();
    for (index, (path, text)) in personal_text_mut(event).into_iter().enumerate() {
        let n = nonce()?;
        let aad = aad(event_id, index, path);
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&n),
                Payload {
                    msg: text.as_bytes(),
                    aad: &aad,
                },
            )
            // Fails only for a message over 256 GiB.
            .expect("XChaCha20-Poly1305 seals any text");
        fields.push(SealedText {
            nonce: n,
            ciphertext,
        });
        text.clear();
    }
    Ok(Seal { fields })
}

/// Whether a decoded, emptied event fits its seal: one sealed text per personal text,
/// each emptied. `Err` names what does not.
pub(crate) fn check_fits(event: &mut DomainEvent, seal: &Seal) -> Result<(), String> {
    let texts = personal_text_mut(event);
    if texts.len() != seal.fields.len() {
        return Err(format!(
            "{} sealed texts for {} personal fields",
            seal.fields.len(),
            texts.len()
        ));
    }
    if let Some((path, _)) = texts.iter().find(|(_, t)| !t.is_empty()) {
        return Err(format!("`{path}` is in the clear in a sealed payload"));
    }
    Ok(())
}

/// Opens `seal` into the emptied personal text of `event`; on error `event` is unchanged.
pub(crate) fn open_text(
    event: &mut DomainEvent,
    event_id: Uuid,
    seal: &Seal,
    key: &[u8; 32],
) -> Result<(), SealError> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let mut opened = Vec::with_capacity(seal.fields.len());
    {
        let texts = personal_text_mut(event);
        for (index, ((path, _), sealed)) in texts.iter().zip(&seal.fields).enumerate() {
            let aad = aad(event_id, index, path);
            let bytes = cipher
                .decrypt(
                    XNonce::from_slice(&sealed.nonce),
                    Payload {
                        msg: &sealed.ciphertext,
                        aad: &aad,
                    },
                )
                .map_err(|_| SealError::DoesNotOpen { index, path })?;
            opened.push(String::from_utf8(bytes).map_err(|_| SealError::NotText { index, path })?);
        }
    }
    for ((_, text), value) in personal_text_mut(event).into_iter().zip(opened) {
        *text = value;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_every_sealed_version_follows_its_plain_one() {
        for w in SEALED.windows(2) {
            assert!(w[0].0 < w[1].0, "{:?} then {:?}", w[0], w[1]);
        }
        for (t, plain, sealed) in SEALED {
            assert!(sealed > plain, "{t}");
            assert!(
                !t.starts_with("campaign."),
                "{t}: campaigns have no subject"
            );
        }
    }
}
