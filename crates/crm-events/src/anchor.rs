//! Notary anchors: signed statements of what the whole stream held up to a position.
//!
//! A per-aggregate hash chain shows an event was not changed in place. It cannot show
//! that a tail was cut off, that an aggregate was removed, or that someone with the
//! store files rewrote a history and hashed it again. The notary (in `crm serve`) reads
//! every message of the stream in order and folds it into a running digest:
//!
//! ```text
//! d(0) = 32 zero bytes
//! d(n) = SHA-256( d(n-1) | seq: u64 BE | len(subject): u32 BE | subject
//!                        | len(payload): u32 BE | payload )
//! ```
//!
//! over the exact bytes of each message's subject and payload (headers are not covered:
//! the payload carries the command id they repeat). Every N messages or T seconds it
//! signs the digest with its Ed25519 key and appends the anchor on its own subject
//! ([`SubjectScheme::anchors`]), which the digest covers like any other. Stored format:
//!
//! ```text
//! [format: u8 = 4] [postcard(AnchorV1)] [Ed25519 signature of everything before: 64 bytes]
//! ```
//!
//! Anyone with the public key checks an anchor against the stream ([`RunningDigest`]
//! recomputes it); an auditor who kept an anchor can later prove the stream up to its
//! position is the same bytes in the same order, whatever chains were re-hashed since.
//!
//! Like every stored format this one is forever: a new field means a new format byte,
//! and this one keeps decoding (golden fixture `tests/fixtures/anchors/anchor.v1.bin`).
//!
//! [`SubjectScheme::anchors`]: crate::SubjectScheme::anchors

use std::collections::BTreeMap;

use crm_domain::Timestamp;
use ed25519_dalek::{Signature, Signer, Verifier};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The first byte of an anchor.
pub const ANCHOR_FORMAT_V1: u8 = 4;
const SIGNATURE_LEN: usize = 64;

/// What the notary signed: the stream as it read it, up to `position`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Anchor {
    /// The stream's name: an anchor of one stream says nothing about another.
    pub stream: String,
    /// The last stream sequence covered.
    pub position: u64,
    /// How many messages the digest covers (positions up to `position` that hold one).
    pub messages: u64,
    /// The running digest after the message at `position`.
    pub digest: [u8; 32],
    /// Distinct subjects seen up to `position` (every aggregate, the quarantine log and
    /// any other subject; anchors themselves not counted).
    pub subjects: u64,
    /// [`RunningDigest::heads`]: each subject's last position, summarised.
    pub heads: [u8; 32],
    /// The notary's clock when it signed (information; nothing is ordered by it).
    pub signed_at: Timestamp,
    /// The key that signed it.
    pub public_key: [u8; 32],
}

#[derive(Serialize, Deserialize)]
struct AnchorV1<'a> {
    #[serde(borrow)]
    stream: &'a str,
    position: u64,
    messages: u64,
    digest: [u8; 32],
    subjects: u64,
    heads: [u8; 32],
    signed_at: i64,
    public_key: [u8; 32],
}

/// Why an anchor is not to be trusted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AnchorError {
    #[error("{0} bytes: too short for an anchor")]
    TooShort(usize),
    #[error("unknown anchor format {0}")]
    UnknownFormat(u8),
    #[error("malformed anchor: {0}")]
    Malformed(String),
    #[error("signed by key {0}, which is not a trusted notary key")]
    UntrustedKey(String),
    #[error("the signature does not verify under key {0}")]
    BadSignature(String),
}

/// Signs an anchor with the notary's key (its `public_key` is set from the key).
#[must_use]
pub fn sign_anchor(anchor: &Anchor, key: &SigningKey) -> Vec<u8> {
    let public_key = key.verifying_key().to_bytes();
    let v1 = AnchorV1 {
        stream: &anchor.stream,
        position: anchor.position,
        messages: anchor.messages,
        digest: anchor.digest,
        subjects: anchor.subjects,
        heads: anchor.heads,
        signed_at: anchor.signed_at.as_micros(),
        public_key,
    };
    let mut bytes = vec![ANCHOR_FORMAT_V1];
    bytes = postcard::to_extend(&v1, bytes).expect("postcard encodes an anchor");
    let signature = key.sign(&bytes);
    bytes.extend_from_slice(&signature.to_bytes());
    bytes
}

/// Decodes a stored anchor without checking its signature (see [`verify_anchor`]).
pub fn decode_anchor(bytes: &[u8]) -> Result<Anchor, AnchorError> {
    if bytes.len() < 1 + SIGNATURE_LEN {
        return Err(AnchorError::TooShort(bytes.len()));
    }
    let body = &bytes[..bytes.len() - SIGNATURE_LEN];
    if body[0] != ANCHOR_FORMAT_V1 {
        return Err(AnchorError::UnknownFormat(body[0]));
    }
    let (v1, rest): (AnchorV1<'_>, _) =
        postcard::take_from_bytes(&body[1..]).map_err(|e| AnchorError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(AnchorError::Malformed(format!(
            "{} unexpected bytes before the signature",
            rest.len()
        )));
    }
    Ok(Anchor {
        stream: v1.stream.to_owned(),
        position: v1.position,
        messages: v1.messages,
        digest: v1.digest,
        subjects: v1.subjects,
        heads: v1.heads,
        signed_at: Timestamp::from_micros(v1.signed_at),
        public_key: v1.public_key,
    })
}

/// Decodes an anchor and checks it was signed by one of `trusted` keys.
pub fn verify_anchor(bytes: &[u8], trusted: &[VerifyingKey]) -> Result<Anchor, AnchorError> {
    let anchor = decode_anchor(bytes)?;
    let key_hex = hex::encode(anchor.public_key);
    let key = trusted
        .iter()
        .find(|k| k.to_bytes() == anchor.public_key)
        .ok_or_else(|| AnchorError::UntrustedKey(key_hex.clone()))?;
    let (body, signature) = bytes.split_at(bytes.len() - SIGNATURE_LEN);
    let signature =
        Signature::from_slice(signature).map_err(|_| AnchorError::BadSignature(key_hex.clone()))?;
    key.verify(body, &signature)
        .map_err(|_| AnchorError::BadSignature(key_hex))?;
    Ok(anchor)
}

/// A public key from its hex spelling (64 hex digits, as the notary prints it).
pub fn parse_public_key(hex_key: &str) -> Result<VerifyingKey, AnchorError> {
    let bytes: [u8; 32] = hex::decode(hex_key.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| AnchorError::Malformed("a public key is 64 hex digits".into()))?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|e| AnchorError::Malformed(format!("not an Ed25519 public key: {e}")))
}

/// The running digest over a stream read in order, with each subject's last position.
/// The notary and the verifier fold the same messages through this one type.
#[derive(Clone, Debug)]
pub struct RunningDigest {
    anchors_subject: String,
    digest: [u8; 32],
    messages: u64,
    position: u64,
    /// By the first 16 bytes of SHA-256(subject): the subject's last position. Keyed by
    /// hash (24 bytes an entry whatever the subject) and ordered, so [`Self::heads`] is
    /// the same on every machine.
    heads: BTreeMap<[u8; 16], u64>,
}

impl RunningDigest {
    /// An empty stream's digest; `anchors_subject` is left out of the heads.
    #[must_use]
    pub fn new(anchors_subject: impl Into<String>) -> Self {
        Self {
            anchors_subject: anchors_subject.into(),
            digest: [0; 32],
            messages: 0,
            position: 0,
            heads: BTreeMap::new(),
        }
    }

    /// Folds in the message at `seq` (sequences must increase).
    pub fn push(&mut self, seq: u64, subject: &str, payload: &[u8]) {
        debug_assert!(seq > self.position, "messages in stream order");
        let mut h = Sha256::new();
        h.update(self.digest);
        h.update(seq.to_be_bytes());
        h.update(len32(subject.len()).to_be_bytes());
        h.update(subject.as_bytes());
        h.update(len32(payload.len()).to_be_bytes());
        h.update(payload);
        self.digest = h.finalize().into();
        self.messages += 1;
        self.position = seq;
        if subject != self.anchors_subject {
            let key: [u8; 32] = Sha256::digest(subject.as_bytes()).into();
            let mut short = [0; 16];
            short.copy_from_slice(&key[..16]);
            self.heads.insert(short, seq);
        }
    }

    #[must_use]
    pub fn position(&self) -> u64 {
        self.position
    }

    #[must_use]
    pub fn messages(&self) -> u64 {
        self.messages
    }

    #[must_use]
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    #[must_use]
    pub fn subjects(&self) -> u64 {
        self.heads.len() as u64
    }

    /// SHA-256 over every subject's (hashed name, last position), in hashed-name order.
    /// Linear in the number of subjects: computed per anchor, not per message.
    #[must_use]
    pub fn heads(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        for (subject, seq) in &self.heads {
            h.update(subject);
            h.update(seq.to_be_bytes());
        }
        h.finalize().into()
    }

    /// The anchor of the stream as folded so far (unsigned: see [`sign_anchor`]).
    #[must_use]
    pub fn anchor(&self, stream: &str, signed_at: Timestamp) -> Anchor {
        Anchor {
            stream: stream.to_owned(),
            position: self.position,
            messages: self.messages,
            digest: self.digest,
            subjects: self.subjects(),
            heads: self.heads(),
            signed_at,
            public_key: [0; 32],
        }
    }

    /// What differs between an anchor and this digest, folded to the anchor's position
    /// (`None`: they agree). Signature and key are checked by [`verify_anchor`].
    #[must_use]
    pub fn disagreement(&self, anchor: &Anchor) -> Option<String> {
        let mut what = Vec::new();
        if self.position != anchor.position {
            what.push(format!(
                "the stream was read to position {}, the anchor covers {}",
                self.position, anchor.position
            ));
        }
        if self.messages != anchor.messages {
            what.push(format!(
                "{} messages up to there, the anchor signed {}",
                self.messages, anchor.messages
            ));
        }
        if self.digest != anchor.digest {
            what.push("the running digest differs".into());
        }
        if self.subjects() != anchor.subjects {
            what.push(format!(
                "{} subjects, the anchor signed {}",
                self.subjects(),
                anchor.subjects
            ));
        }
        if self.heads() != anchor.heads {
            what.push("the subjects' last positions differ".into());
        }
        (!what.is_empty()).then(|| what.join("; "))
    }
}

/// An anchor checked against the stream: where it is stored (0 for one an auditor kept
/// outside the stream) and what disagrees (`None`: it holds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    pub anchor_seq: u64,
    pub anchor: Anchor,
    pub problem: Option<String>,
}

/// Folds the stream in order and checks each given anchor when the fold reaches the
/// position it covers: the notary checks its own earlier anchors on every start, the
/// auditor's `verify` every anchor of the stream and any it kept.
#[derive(Clone, Debug)]
pub struct AnchorCheck {
    digest: RunningDigest,
    /// By covered position.
    due: BTreeMap<u64, Vec<(u64, Anchor)>>,
}

impl AnchorCheck {
    #[must_use]
    pub fn new(anchors_subject: impl Into<String>, anchors: Vec<(u64, Anchor)>) -> Self {
        let mut due: BTreeMap<u64, Vec<(u64, Anchor)>> = BTreeMap::new();
        for (seq, a) in anchors {
            due.entry(a.position).or_default().push((seq, a));
        }
        Self {
            digest: RunningDigest::new(anchors_subject),
            due,
        }
    }

    /// The digest as folded so far.
    #[must_use]
    pub fn digest(&self) -> &RunningDigest {
        &self.digest
    }

    /// Anchors still waiting for their position.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.due.values().map(Vec::len).sum()
    }

    /// Folds in the message at `seq`; returns the anchors that could be checked.
    pub fn push(&mut self, seq: u64, subject: &str, payload: &[u8]) -> Vec<Checked> {
        let mut out = Vec::new();
        // An anchor covering a position the stream no longer holds: checked against the
        // fold just before it (and reported with both positions).
        while let Some(entry) = self.due.first_entry() {
            if *entry.key() >= seq {
                break;
            }
            out.extend(Self::resolve(&self.digest, entry.remove(), None));
        }
        self.digest.push(seq, subject, payload);
        if let Some(list) = self.due.remove(&seq) {
            out.extend(Self::resolve(&self.digest, list, None));
        }
        out
    }

    /// The anchors beyond the stream's end: the stream lost its tail since they were
    /// signed.
    #[must_use]
    pub fn finish(mut self) -> (RunningDigest, Vec<Checked>) {
        let mut out = Vec::new();
        for list in std::mem::take(&mut self.due).into_values() {
            let ends = format!(
                "the stream ends at position {} ({} messages) but the anchor covers position {}: its tail was cut off or rewritten",
                self.digest.position, self.digest.messages, list[0].1.position
            );
            out.extend(Self::resolve(&self.digest, list, Some(ends)));
        }
        (self.digest, out)
    }

    fn resolve(
        digest: &RunningDigest,
        list: Vec<(u64, Anchor)>,
        problem: Option<String>,
    ) -> impl Iterator<Item = Checked> {
        list.into_iter().map(move |(anchor_seq, anchor)| Checked {
            problem: problem.clone().or_else(|| digest.disagreement(&anchor)),
            anchor_seq,
            anchor,
        })
    }
}

fn len32(n: usize) -> u32 {
    u32::try_from(n).expect("a NATS message is far below 4 GiB")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn digest_of(messages: &[(u64, &str, &[u8])]) -> RunningDigest {
        let mut d = RunningDigest::new("crm.v1.system.anchor");
        for (seq, subject, payload) in messages {
            d.push(*seq, subject, payload);
        }
        d
    }

    #[test]
    fn a_signed_anchor_decodes_and_verifies_under_its_key_only() {
        let d = digest_of(&[(1, "a", b"x"), (2, "b", b"y")]);
        let bytes = sign_anchor(&d.anchor("S", Timestamp::from_micros(5)), &key(1));
        let trusted = [key(1).verifying_key()];
        let anchor = verify_anchor(&bytes, &trusted).unwrap();
        assert_eq!(anchor.position, 2);
        assert_eq!(anchor.public_key, key(1).verifying_key().to_bytes());
        assert_eq!(d.disagreement(&anchor), None);
        assert!(matches!(
            verify_anchor(&bytes, &[key(2).verifying_key()]),
            Err(AnchorError::UntrustedKey(_))
        ));
        // Any changed byte of the signed part breaks the signature (or the decoding).
        for i in 0..bytes.len() - SIGNATURE_LEN {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert!(verify_anchor(&bad, &trusted).is_err(), "byte {i}");
        }
    }

    #[test]
    fn the_digest_covers_order_positions_subjects_and_bytes() {
        let base = digest_of(&[(1, "a", b"x"), (2, "b", b"y")]);
        for other in [
            digest_of(&[(1, "b", b"y"), (2, "a", b"x")]),
            digest_of(&[(1, "a", b"x"), (3, "b", b"y")]),
            digest_of(&[(1, "a", b"x"), (2, "c", b"y")]),
            digest_of(&[(1, "a", b"x"), (2, "b", b"z")]),
            // The boundary between subject and payload is part of the digest.
            digest_of(&[(1, "a", b"x"), (2, "by", b"")]),
        ] {
            assert_ne!(base.digest(), other.digest());
        }
        assert_eq!(
            base.digest(),
            digest_of(&[(1, "a", b"x"), (2, "b", b"y")]).digest()
        );
    }

    #[test]
    fn heads_count_subjects_but_not_anchors() {
        let d = digest_of(&[
            (1, "a", b"x"),
            (2, "a", b"y"),
            (3, "crm.v1.system.anchor", b"z"),
            (4, "b", b"w"),
        ]);
        assert_eq!(d.subjects(), 2);
        assert_eq!(d.messages(), 4);
        let moved = digest_of(&[(1, "a", b"x"), (4, "b", b"w")]);
        assert_ne!(d.heads(), moved.heads());
    }

    #[test]
    fn anchors_are_checked_at_their_position_and_a_lost_tail_is_named() {
        let msgs: [(u64, &str, &[u8]); 4] = [
            (1, "a", b"x"),
            (2, "b", b"y"),
            (3, "a", b"z"),
            (4, "c", b"w"),
        ];
        let at = |n: usize| digest_of(&msgs[..n]).anchor("S", Timestamp::from_micros(0));
        // The stream as signed: both anchors hold.
        let mut check = AnchorCheck::new("anchors", vec![(10, at(2)), (0, at(4))]);
        let mut checked = Vec::new();
        for (seq, subject, payload) in msgs {
            checked.extend(check.push(seq, subject, payload));
        }
        assert_eq!(checked.len(), 2);
        assert!(checked.iter().all(|c| c.problem.is_none()), "{checked:?}");
        // Position 2 rewritten: the anchor at 2 (and every later one) disagrees.
        let mut check = AnchorCheck::new("anchors", vec![(10, at(2)), (0, at(4))]);
        let mut checked = Vec::new();
        for (seq, subject, payload) in [msgs[0], (2, "b", b"Y"), msgs[2], msgs[3]] {
            checked.extend(check.push(seq, subject, payload));
        }
        assert!(checked.iter().all(|c| c.problem.is_some()), "{checked:?}");
        // The tail cut after position 3: the anchor at 4 is left, and finish names it.
        let mut check = AnchorCheck::new("anchors", vec![(0, at(4))]);
        for (seq, subject, payload) in &msgs[..3] {
            assert!(check.push(*seq, subject, payload).is_empty());
        }
        let (_, left) = check.finish();
        assert!(
            left[0]
                .problem
                .as_deref()
                .unwrap()
                .contains("ends at position 3")
        );
        // A missing message in the middle: the anchor at 2 is checked when 3 arrives.
        let mut check = AnchorCheck::new("anchors", vec![(0, at(2))]);
        assert!(check.push(1, "a", b"x").is_empty());
        let found = check.push(3, "a", b"z");
        assert!(
            found[0]
                .problem
                .as_deref()
                .unwrap()
                .contains("read to position 1")
        );
    }

    #[test]
    fn public_keys_parse_from_hex() {
        let k = key(3).verifying_key();
        assert_eq!(parse_public_key(&hex::encode(k.to_bytes())).unwrap(), k);
        assert!(parse_public_key("abc").is_err());
    }
}
